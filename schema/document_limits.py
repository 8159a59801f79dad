"""Bounds on what one GraphQL document may ask for, checked before anything runs: its
tokens (while parsing), and its depth and aliases (while validating), fragments
included."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)
from strawberry.extensions import AddValidationRules, DisableIntrospection, MaxTokensLimiter
from strawberry.extensions.base_extension import SchemaExtension

# Our schema's deepest useful selection is about five levels (tasks > edges > node >
# errors > message); ten leaves room and refuses the nested queries used as attacks.
DEFAULT_MAX_DEPTH = 10
# A large hand-written query is a few hundred tokens.
DEFAULT_MAX_TOKENS = 2_000
# Aliases let one document ask for one field many times; a UI rarely needs more than a
# handful.
DEFAULT_MAX_ALIASES = 30


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int = DEFAULT_MAX_DEPTH
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_aliases: int = DEFAULT_MAX_ALIASES
    # Operations one HTTP request may carry as a JSON array; 1 turns batching off.
    max_batch: int = 1
    introspection: bool = True


@dataclass(frozen=True)
class _Size:
    depth: int
    aliases: int


class _Measure:
    """Depth and alias count of selections, each fragment measured once however often it
    is spread, so a document of nested spreads costs time in its length, not in what it
    would expand to."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self._measured: dict[str, _Size] = {}
        self._measuring: set[str] = set()

    def of(self, selection_set: SelectionSetNode | None) -> _Size:
        depth, aliases = 0, 0
        for selection in selection_set.selections if selection_set else ():
            size = self._selection(selection)
            depth, aliases = max(depth, size.depth), aliases + size.aliases
        return _Size(depth, aliases)

    def _selection(self, selection: Any) -> _Size:
        if isinstance(selection, FieldNode):
            inner = self.of(selection.selection_set)
            return _Size(inner.depth + 1, inner.aliases + (1 if selection.alias else 0))
        if isinstance(selection, InlineFragmentNode):
            return self.of(selection.selection_set)
        if isinstance(selection, FragmentSpreadNode):
            return self._fragment(selection.name.value)
        return _Size(0, 0)

    def _fragment(self, name: str) -> _Size:
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._measuring:
            # Unknown or cyclic: graphql's own rules report it.
            return _Size(0, 0)
        self._measuring.add(name)
        size = self.of(fragment.selection_set)
        self._measuring.discard(name)
        self._measured[name] = size
        return size


def document_size_rule(limits: QueryLimits) -> type[ASTValidationRule]:
    """The validation rule that refuses a document deeper or with more aliases than
    `limits` allow."""

    class DocumentSize(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._check(context.document)

        def _check(self, document: DocumentNode) -> None:
            fragments = {
                node.name.value: node
                for node in document.definitions
                if isinstance(node, FragmentDefinitionNode)
            }
            measure = _Measure(fragments)
            for node in document.definitions:
                if isinstance(node, OperationDefinitionNode):
                    self._report(measure.of(node.selection_set))

        def _report(self, size: _Size) -> None:
            if size.depth > limits.max_depth:
                self.report_error(
                    GraphQLError(
                        f"The query is {size.depth} levels deep; the limit is "
                        f"{limits.max_depth} (AITASKS_QUERY_MAX_DEPTH)."
                    )
                )
            if size.aliases > limits.max_aliases:
                self.report_error(
                    GraphQLError(
                        f"The query uses {size.aliases:,} aliases, counting fragments where "
                        f"they are spread; the limit is {limits.max_aliases} "
                        "(AITASKS_QUERY_MAX_ALIASES)."
                    )
                )

    return DocumentSize


def limit_extensions(limits: QueryLimits) -> list[Callable[[], SchemaExtension]]:
    """The schema extensions that hold a document to the limits."""
    # One rule class for the schema's life: the validation cache is keyed by the rules.
    rule = document_size_rule(limits)
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: AddValidationRules([rule]),
    ]
    if not limits.introspection:
        extensions.extend((DisableIntrospection, HideSuggestions))
    return extensions


# How graphql-core appends its guesses to a message ("... Did you mean 'prompt'?").
SUGGESTION = " Did you mean "


def hide_suggestions(errors: Iterable[GraphQLError] | None) -> None:
    """Cut graphql-core's "Did you mean ...?" from each message: with introspection off,
    the suggestions would spell out the schema a field name at a time."""
    for error in errors or ():
        if SUGGESTION in error.message:
            error.message = error.message.split(SUGGESTION, 1)[0]


class HideSuggestions(SchemaExtension):
    """No field, argument, type or value suggestions in any error (see hide_suggestions)."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        hide_suggestions(context.pre_execution_errors)
        hide_suggestions(getattr(context.result, "errors", None))
