"""The cap on a caller's unfinished tasks holds however many requests race for the last
places: concurrent creates and retries together never take a caller past it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.stack import Stack

UNFINISHED_MAX = 5
# Many more requests than places, sent at once.
RACERS = 30
CREATE = """
mutation Create($input: CreateTaskInput!) {
  createTask(input: $input) { __typename ... on Task { id } ... on RateLimited { message } }
}
"""
CANCEL = "mutation Cancel($id: ID!) { cancelTask(id: $id) { __typename } }"
RETRY = """
mutation Retry($id: ID!) {
  retryTask(id: $id) { __typename ... on Task { id } ... on RateLimited { message } }
}
"""
UNFINISHED = """
query Unfinished {
  pending: tasks(first: 100, status: PENDING) { edges { node { id } } }
  processing: tasks(first: 100, status: PROCESSING) { edges { node { id } } }
}
"""


@pytest.fixture(scope="module")
def capped(make_stack: Callable[..., Stack]) -> Iterator[Stack]:
    # No worker: every task created stays PENDING, so each counts until it is cancelled.
    stack = make_stack(AITASKS_UNFINISHED_TASKS_MAX=str(UNFINISHED_MAX))
    stack.start_api()
    yield stack
    # Stopped with the module, not the session: every stack holds PostgreSQL
    # connections, and the suite's stacks together would pass its connection limit.
    stack.terminate()
    stack.wait_stopped()


async def _post(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


async def _race(stack: Stack, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        return await asyncio.gather(*(_post(client, q, v) for q, v in calls))


def unfinished(stack: Stack) -> int:
    response = httpx.post(stack.graphql_url, json={"query": UNFINISHED}, timeout=30)
    data = response.json()["data"]
    return len(data["pending"]["edges"]) + len(data["processing"]["edges"])


def cancel_all(stack: Stack, task_ids: list[str]) -> None:
    for task_id in task_ids:
        httpx.post(stack.graphql_url, json={"query": CANCEL, "variables": {"id": task_id}})


def test_concurrent_creates_never_pass_the_unfinished_cap(capped: Stack) -> None:
    created_input = {"input": {"prompt": "race"}}

    results = asyncio.run(_race(capped, [(CREATE, created_input)] * RACERS))

    kinds = [result["__typename"] for result in results]
    assert kinds.count("Task") == UNFINISHED_MAX, kinds
    assert kinds.count("RateLimited") == RACERS - UNFINISHED_MAX
    assert unfinished(capped) == UNFINISHED_MAX
    cancel_all(capped, [result["id"] for result in results if result["__typename"] == "Task"])


def test_retries_and_creates_together_never_pass_the_unfinished_cap(capped: Stack) -> None:
    # A full set, all cancelled: each may be retried, and none counts yet.
    full = asyncio.run(_race(capped, [(CREATE, {"input": {"prompt": "r"}})] * UNFINISHED_MAX))
    task_ids = [task["id"] for task in full]
    assert [task["__typename"] for task in full] == ["Task"] * UNFINISHED_MAX
    cancel_all(capped, task_ids)
    assert unfinished(capped) == 0

    calls = [(RETRY, {"id": task_id}) for task_id in task_ids]
    calls += [(CREATE, {"input": {"prompt": "more"}})] * UNFINISHED_MAX
    results = asyncio.run(_race(capped, calls))

    kinds = [result["__typename"] for result in results]
    assert kinds.count("Task") == UNFINISHED_MAX, kinds
    assert unfinished(capped) == UNFINISHED_MAX
    retried = asyncio.run(_race(capped, [(RETRY, {"id": task_ids[0]})]))
    assert retried[0]["__typename"] in ("RateLimited", "TaskStateError")
    cancel_all(capped, [result["id"] for result in results if result["__typename"] == "Task"])
