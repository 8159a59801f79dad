"""Prepared operations: valid single queries and mutations run straight on graphql-core,
and everything else is left to Strawberry, which answers as it always has."""

from __future__ import annotations

import json

import httpx
import pytest

from schema import QueryLimits, build_schema
from schema.prepared import PREPARED_MAX_DOCUMENTS, PreparedOperations
from tests.fixtures.graphql import CREATE_TASK
from tests.fixtures.stack import Stack

TASK_QUERY = "query Task($id: ID!) { task(id: $id) { id status } }"


@pytest.fixture(scope="module")
def prepared() -> PreparedOperations:
    limits = QueryLimits(max_depth=4, max_tokens=60)
    return PreparedOperations(build_schema(limits), limits)


def test_a_valid_operation_is_prepared_once_and_kept(prepared: PreparedOperations) -> None:
    first = prepared.get(TASK_QUERY, None)

    assert first is not None
    assert prepared.get(TASK_QUERY, None) is first
    assert prepared.get(TASK_QUERY, "Task") is not None


@pytest.mark.parametrize(
    ("query", "operation_name"),
    [
        ("{ task(id: 1) { nope } }", None),
        ("{ task(id: 1) { id ", None),
        ("subscription { taskStatus(id: 1) { sequence } }", None),
        ("query A { tasks { edges { cursor } } } query B { tasks { edges { cursor } } }", None),
        (TASK_QUERY, "NotInTheDocument"),
        ("{ tasks { edges { node { errors { message } } } } }", None),
        ("{ " + " ".join(f"a{n}: task(id: {n}) {{ id }}" for n in range(20)) + " }", None),
    ],
    ids=[
        "unknown field",
        "syntax error",
        "subscription",
        "two operations, no name",
        "unknown operation name",
        "over the depth limit",
        "over the token limit",
    ],
)
def test_a_document_for_strawberry_to_answer_is_not_prepared(
    prepared: PreparedOperations, query: str, operation_name: str | None
) -> None:
    assert prepared.get(query, operation_name) is None


def test_the_prepared_documents_are_bounded(prepared: PreparedOperations) -> None:
    queries = [f"{{ task(id: {number}) {{ id }} }}" for number in range(PREPARED_MAX_DOCUMENTS + 5)]
    for query in queries:
        prepared.get(query, None)

    assert len(prepared._prepared) == PREPARED_MAX_DOCUMENTS
    # The oldest went first.
    assert (queries[0], None) not in prepared._prepared
    assert (queries[-1], None) in prepared._prepared


def _post(stack: Stack, body: object) -> httpx.Response:
    return httpx.post(
        stack.graphql_url,
        content=json.dumps(body),
        headers={"content-type": "application/json"}
        | ({"authorization": f"Bearer {stack.key}"} if stack.key else {}),
        timeout=15,
    )


def test_the_same_create_answers_alike_prepared_or_through_strawberry(stack: Stack) -> None:
    variables = {"input": {"prompt": "Answer me twice"}}
    prepared = _post(stack, {"query": CREATE_TASK, "variables": variables})
    # A request with `extensions` is one the prepared path leaves to Strawberry.
    unprepared = _post(stack, {"query": CREATE_TASK, "variables": variables, "extensions": {}})

    assert prepared.status_code == unprepared.status_code == 200
    first, second = prepared.json()["data"]["createTask"], unprepared.json()["data"]["createTask"]
    assert first.keys() == second.keys()
    assert first["id"] != second["id"]
    for field in ("status", "prompt", "model", "sequence", "kind", "progress"):
        assert first[field] == second[field]


def test_bad_variables_get_the_same_error_either_way(stack: Stack) -> None:
    body = {"query": CREATE_TASK, "variables": {"input": {"prompt": 5}}}
    prepared = _post(stack, body).json()
    unprepared = _post(stack, {**body, "extensions": {}}).json()

    assert prepared == unprepared
    assert prepared["data"] is None
    assert "String cannot represent a non string value" in prepared["errors"][0]["message"]
