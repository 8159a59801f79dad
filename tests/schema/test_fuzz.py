"""Property-based fuzzing of the GraphQL API over real HTTP: whatever valid or invalid
document hypothesis-graphql derives from the schema, the API never answers 500 and never
shows a stack trace."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from schema import schema
from schema.error_mapping import UNEXPECTED_MESSAGE
from tests.fixtures.stack import Stack

# Enough documents to reach every field and argument several ways, in about a minute;
# `make fuzz` asks for more with FUZZ_EXAMPLES.
EXAMPLES = max(150, int(os.environ.get("FUZZ_EXAMPLES", "0")))
SDL = schema.as_str()
JSON_VALUES = st.one_of(
    st.text(max_size=30).map(nodes.String),
    st.integers(min_value=-(2**70), max_value=2**70).map(nodes.Int),
    st.just(graphql.NullValueNode()),
    st.builds(
        lambda name, value: nodes.Object(
            [graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)]
        ),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
        st.text(max_size=10).map(nodes.String),
    ),
)
CUSTOM_SCALARS = {
    "DateTime": st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda moment: nodes.String(moment.isoformat())),
        st.text(max_size=20).map(nodes.String),
    ),
    "JSON": JSON_VALUES,
    # An upload only arrives in a multipart request; in a document it can only be null.
    "Upload": st.just(graphql.NullValueNode()),
}
STACK_TRACE_MARKERS = ("Traceback", 'File "/', "site-packages")
# What a masked internal error says: input that reaches one has found a bug, 500 or not.
MASKED = UNEXPECTED_MESSAGE


@pytest.fixture(scope="module")
def api_only(make_stack: Callable[..., Stack]) -> Stack:
    # No worker: tasks the fuzzer creates wait PENDING instead of occupying one.
    stack = make_stack()
    stack.start_api()
    return stack


def check(stack: Stack, document: str) -> None:
    response = httpx.post(stack.graphql_url, json={"query": document}, timeout=30)
    assert response.status_code < 500, (document, response.text)
    assert not any(marker in response.text for marker in STACK_TRACE_MARKERS), response.text
    assert MASKED not in response.text, document


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE])
def test_no_document_makes_a_500_or_shows_a_stack_trace(api_only: Stack, mode: Mode) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )
    @given(document=from_schema(SDL, custom_scalars=CUSTOM_SCALARS, mode=mode))
    def run(document: str) -> None:
        check(api_only, document)

    run()
