"""`built_directly`: an input built from graphql-core's value equals the one Strawberry's
own conversion builds, field for field, whatever the client sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from graphql import GraphQLInputObjectType, coerce_input_value
from strawberry.types.arguments import convert_argument
from strawberry.types.base import get_object_definition

from schema import QueryLimits, build_schema
from schema.inputs import built_directly
from schema.internals import graphql_schema
from schema.types import CreateTaskInput

schema = build_schema(QueryLimits())
INPUT_TYPE = graphql_schema(schema).type_map["CreateTaskInput"]
assert isinstance(INPUT_TYPE, GraphQLInputObjectType)


def _convert(variables: dict[str, Any]) -> Any:
    """The input as a resolver gets it: coerced by graphql-core, then converted."""
    value = coerce_input_value(variables, INPUT_TYPE)
    return convert_argument(
        value, CreateTaskInput, schema.schema_converter.scalar_registry, schema.config
    )


@pytest.fixture
def strawberrys_own() -> Iterator[None]:
    """Strawberry's field-by-field conversion, as without `built_directly`."""
    definition = get_object_definition(CreateTaskInput, strict=True)
    hook, definition.from_input = definition.from_input, None
    try:
        yield
    finally:
        definition.from_input = hook


INPUTS = [
    {},
    {"prompt": "Write a haiku"},
    {"prompt": "", "model": None, "kind": "DATA_ANALYSIS", "priority": "HIGH"},
    {"runAt": "2026-12-01T10:00:00+01:00", "delaySeconds": None, "timeoutSeconds": 30},
    {"delaySeconds": 1.5, "idempotencyKey": "key-1", "params": {"a": [1, {"b": None}]}},
    {"kind": "IMAGE_PROCESSING", "files": [{"name": "a.png", "base64": "AAAA"}]},
    {"files": [{"name": "a.csv", "contentType": "text/csv"}, {"name": "b.json"}]},
]


@pytest.mark.parametrize("variables", INPUTS)
def test_the_same_input_as_strawberrys_conversion(
    variables: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    assert get_object_definition(CreateTaskInput, strict=True).from_input is not None
    built = _convert(variables)
    request.getfixturevalue("strawberrys_own")
    converted = _convert(variables)

    assert get_object_definition(CreateTaskInput, strict=True).from_input is None
    assert type(built) is CreateTaskInput
    assert built == converted
    assert [type(file) for file in built.files] == [type(file) for file in converted.files]


def test_a_default_list_is_never_shared_between_requests() -> None:
    first, second = _convert({}), _convert({})

    first.files.append("changed")

    assert second.files == []


def test_a_field_without_a_default_is_none_when_left_out() -> None:
    @built_directly
    @strawberry.input
    class Named:
        name: str | None
        tags: list[str] | None

    definition = get_object_definition(Named, strict=True)
    assert definition.from_input is not None
    built = definition.from_input(Named, {}, None)  # type: ignore[arg-type]

    assert built == Named(name=None, tags=None)


def test_a_maybe_field_is_refused() -> None:
    @built_directly
    @strawberry.input
    class WithMaybe:
        name: strawberry.Maybe[str]

    definition = get_object_definition(WithMaybe, strict=True)
    assert definition.from_input is not None
    with pytest.raises(TypeError, match="Maybe"):
        definition.from_input(WithMaybe, {"name": "x"}, None)  # type: ignore[arg-type]
