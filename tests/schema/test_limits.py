"""Documents over the depth, token or alias limits are refused before anything runs; the
limits follow fragments, and a document of nested fragment spreads cannot make the check
itself expensive."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_app.settings import Settings
from schema import QueryLimits, build_schema

pytestmark = pytest.mark.anyio
LIMITS = QueryLimits()
SCHEMA = build_schema(LIMITS)


def nested_type_query(of_types: int) -> str:
    """An introspection query `of_types + 5` levels deep."""
    inner = "name"
    for _ in range(of_types):
        inner = f"ofType {{ {inner} }}"
    return f"query {{ __schema {{ types {{ fields {{ type {{ {inner} }} }} }} }} }}"


def tokens(count: int) -> str:
    """A document of about `count` tokens (7 per repeated selection, 3 around them)."""
    repeated = " ".join(["__schema { queryType { name } }"] * ((count - 3) // 7))
    return f"query {{ {repeated} }}"


def aliased_fragment(aliases: int, spreads: int) -> str:
    fields = " ".join(f"a{index}: __typename" for index in range(aliases))
    return f"query {{ {' '.join(['...F'] * spreads)} }}\nfragment F on Query {{ {fields} }}"


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels aliases once expanded."""
    parts = ["query { ...F0 }"]
    parts += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on Query {{ a: __typename }}")
    return "\n".join(parts)


async def errors_of(document: str, schema: Any = SCHEMA) -> list[str]:
    result = await schema.execute(document)
    return [error.message for error in result.errors or []]


@pytest.mark.parametrize(
    ("document", "refusal"),
    [
        (nested_type_query(LIMITS.max_depth - 5), None),
        (nested_type_query(LIMITS.max_depth - 4), "levels deep; the limit is 10"),
        (tokens(LIMITS.max_tokens), None),
        (tokens(LIMITS.max_tokens + 7), "more than 2000 tokens"),
        (aliased_fragment(LIMITS.max_aliases, 1), None),
        (aliased_fragment(16, 2), "32 aliases"),
        (fragment_bomb(30), "1,073,741,824 aliases"),
    ],
)
async def test_a_document_just_under_a_limit_runs_and_just_over_is_refused(
    document: str, refusal: str | None
) -> None:
    errors = await errors_of(document)

    if refusal is None:
        assert errors == []
    else:
        assert len(errors) >= 1 and refusal in errors[0], errors


async def test_introspection_is_refused_when_turned_off() -> None:
    closed = build_schema(QueryLimits(introspection=False))

    errors = await errors_of("query { __schema { types { name } } }", closed)

    assert errors and "introspection" in errors[0].lower()


def test_introspection_is_off_in_production_unless_turned_on() -> None:
    production = Settings(_env_file=None, env="production")  # type: ignore[call-arg]
    enabled = Settings(_env_file=None, env="production", introspection=True)  # type: ignore[call-arg]

    assert production.introspection_enabled is False
    assert enabled.introspection_enabled is True
