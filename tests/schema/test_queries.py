"""`task` (the polling fallback) and the newest-first `tasks` listing."""

from __future__ import annotations

import base64

import pytest

from tests.fixtures.graphql import create_task, get_task, poll_until_finished, post
from tests.fixtures.stack import Stack

LIST = """
query List($first: Int, $after: String, $status: TaskStatus) {
  tasks(first: $first, after: $after, status: $status) {
    edges { cursor node { id status prompt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def cursor(created_at: str) -> str:
    raw = f"task:{created_at}|0b0f6d0e-5c55-4b59-8f38-1d1d2b8a8a8a"
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize("task_id", ["0b0f6d0e-5c55-4b59-8f38-1d1d2b8a8a8a", "nope", ""])
def test_task_with_an_unknown_id_is_null(stack: Stack, task_id: str) -> None:
    assert get_task(stack, task_id) is None


def test_task_returns_what_create_task_stored(stack: Stack) -> None:
    created = create_task(stack, prompt="Remember me", model="demo")

    polled = get_task(stack, created["id"])

    assert polled is not None
    assert polled["id"] == created["id"]
    assert polled["prompt"] == "Remember me"
    assert polled["createdAt"] == created["createdAt"]


def test_tasks_pages_newest_first_without_gaps_or_repeats(stack: Stack) -> None:
    prompts = [f"listing {n}" for n in range(5)]
    ids = [create_task(stack, prompt=prompt)["id"] for prompt in prompts]

    seen: list[str] = []
    has_next: list[bool] = []
    after = None
    for _ in range(3):
        page = post(stack, LIST, {"first": 2, "after": after})["data"]["tasks"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        has_next.append(page["pageInfo"]["hasNextPage"])
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["pageInfo"]["endCursor"]

    # The five newest tasks are ours, newest first, each exactly once.
    assert seen[:5] == list(reversed(ids))
    assert len(seen) == len(set(seen))
    assert has_next[:2] == [True, True]


def test_tasks_filters_by_status(stack: Stack) -> None:
    # Delayed by an hour, so it stays PENDING while the test looks.
    waiting = create_task(stack, prompt="waiting in line", delaySeconds=3600)
    finished = poll_until_finished(stack, create_task(stack, prompt="done soon")["id"])

    pending = post(stack, LIST, {"first": 50, "status": "PENDING"})["data"]["tasks"]
    completed = post(stack, LIST, {"first": 50, "status": "COMPLETED"})["data"]["tasks"]

    assert waiting["id"] in [edge["node"]["id"] for edge in pending["edges"]]
    assert {edge["node"]["status"] for edge in pending["edges"]} == {"PENDING"}
    assert completed["edges"][0]["node"]["id"] == finished["id"]
    assert {edge["node"]["status"] for edge in completed["edges"]} == {"COMPLETED"}
    cancelled = post(stack, LIST, {"first": 50, "status": "CANCELLED"})["data"]["tasks"]
    assert {edge["node"]["status"] for edge in cancelled["edges"]} <= {"CANCELLED"}
    assert waiting["id"] not in [edge["node"]["id"] for edge in cancelled["edges"]]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 0}, "`first` must be between 1 and 100"),
        ({"first": 101}, "`first` must be between 1 and 100"),
        ({"first": -5}, "`first` must be between 1 and 100"),
        ({"after": "garbage"}, "`after` is not a cursor"),
        ({"after": "dGFzazpub3BlfG5vcGU="}, "`after` is not a cursor"),
        ({"after": cursor("0001-01-01T00:00:00+01:00")}, "`after` is not a cursor"),
        ({"after": cursor("9999-12-31T23:59:59-01:00")}, "`after` is not a cursor"),
    ],
)
def test_bad_paging_arguments_are_readable_errors(
    stack: Stack, variables: dict[str, object], message: str
) -> None:
    body = post(stack, LIST, variables)

    assert body["data"] is None
    assert message in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_page_size_beyond_graphql_int_is_a_readable_error(stack: Stack) -> None:
    body = post(stack, LIST, {"first": 2**31})

    assert body["data"] is None
    assert "Int cannot represent non 32-bit signed integer value" in body["errors"][0]["message"]
