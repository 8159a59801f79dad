"""Documents over the depth, token or alias limits are refused before anything runs; the
limits follow fragments, and a document of nested fragment spreads cannot make the check
itself expensive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from persistence.settings import Settings
from schema import QueryLimits, build_schema
from tests.fixtures.graphql import CREATE_TASK
from tests.fixtures.stack import Stack

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


# A small bound for the answer, so that a few aliased pages pass it.
RESPONSE_MAX_BYTES = 20_000


@pytest.fixture(scope="module")
def locked_down(make_stack: Callable[..., Stack]) -> Iterator[Stack]:
    """An API as production runs it in these respects: introspection off, and a bound on
    the size of an answer."""
    stack = make_stack(
        AITASKS_INTROSPECTION="false", AITASKS_RESPONSE_MAX_BYTES=str(RESPONSE_MAX_BYTES)
    )
    stack.start_api()
    yield stack
    # Stopped with the module, not the session: every stack holds PostgreSQL
    # connections, and the suite's stacks together would pass its connection limit.
    stack.terminate()
    stack.wait_stopped()


def post(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = httpx.post(
        stack.graphql_url, json={"query": query, "variables": variables or {}}, timeout=30
    )
    assert response.status_code in (200, 400), response.text
    return response.json()


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("{ tsks(first: 1) { edges { node { id } } } }", None),
        ("{ tasks(frist: 1) { edges { node { id } } } }", None),
        ("{ tasks(first: 1) { edges { node { promt } } } }", None),
        ("query($s: TaskStatus) { tasks(status: $s) { edges { node { id } } } }", {"s": "PENDIN"}),
        ('mutation { createTask(input: {promt: "x"}) { __typename } }', None),
    ],
)
def test_errors_make_no_suggestions_when_introspection_is_off(
    locked_down: Stack, document: str, variables: dict[str, Any] | None
) -> None:
    body = post(locked_down, document, variables)

    assert body["errors"], body
    assert not any("Did you mean" in error["message"] for error in body["errors"]), body


def test_an_answer_over_the_size_limit_is_refused_with_a_readable_error(
    locked_down: Stack,
) -> None:
    for index in range(5):
        post(locked_down, CREATE_TASK, {"input": {"prompt": f"{index} " + "x" * 2_000}})
    aliases = " ".join(
        f"p{index}: tasks(first: 100) {{ edges {{ node {{ prompt }} }} }}" for index in range(10)
    )

    body = post(locked_down, f"{{ {aliases} }}")
    small = post(locked_down, "{ tasks(first: 1) { edges { node { id } } } }")

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "RESPONSE_TOO_LARGE"
    assert "AITASKS_RESPONSE_MAX_BYTES" in body["errors"][0]["message"]
    assert len(small["data"]["tasks"]["edges"]) == 1
