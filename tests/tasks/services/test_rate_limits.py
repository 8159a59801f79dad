"""Per-caller limits: just under passes, just over gets RATE_LIMITED (HTTP 429 with the
retry time), and nothing is stored for a refused request. Each test uses a key of its
own, since the limits are per key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.graphql import CANCEL_TASK, CREATE_TASK, GET_TASK
from tests.fixtures.keys import new_key
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import count_tasks

REQUESTS_PER_MINUTE = 12
CREATES_PER_MINUTE = 4
UNFINISHED_MAX = 2
BATCH_MAX = 2
# A test that counts within one minute's window starts with at least this much of it left.
WINDOW_LEFT_SECONDS = 20


@pytest.fixture(scope="module")
def limited(make_stack: Callable[..., Stack]) -> Stack:
    # No worker: tasks stay PENDING, so they count as unfinished until cancelled.
    stack = make_stack(
        AITASKS_AUTH="on",
        AITASKS_REQUESTS_PER_MINUTE=str(REQUESTS_PER_MINUTE),
        AITASKS_CREATES_PER_MINUTE=str(CREATES_PER_MINUTE),
        AITASKS_UNFINISHED_TASKS_MAX=str(UNFINISHED_MAX),
        AITASKS_BATCH_MAX_OPERATIONS=str(BATCH_MAX),
    )
    stack.start_api()
    return stack


def in_a_fresh_window() -> None:
    """Counts reset each minute: start where the whole test fits in one window."""
    left = 60 - time.time() % 60
    if left < WINDOW_LEFT_SECONDS:
        time.sleep(left + 0.5)


def call(stack: Stack, key: str, query: str, variables: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        stack.graphql_url,
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


def create(stack: Stack, key: str) -> httpx.Response:
    return call(stack, key, CREATE_TASK, {"input": {"prompt": "count me"}})


def test_requests_over_the_rate_get_429_with_the_retry_time(limited: Stack) -> None:
    key = new_key(limited, f"requests-{uuid.uuid4()}")
    in_a_fresh_window()
    unknown = {"id": str(uuid.uuid4())}
    under = [call(limited, key, GET_TASK, unknown) for _ in range(REQUESTS_PER_MINUTE)]
    before = count_tasks(limited.database_url)

    over = create(limited, key)

    assert [response.status_code for response in under] == [200] * REQUESTS_PER_MINUTE
    assert over.status_code == 429
    error = over.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfterSeconds"] <= 60
    assert over.headers["retry-after"] == str(error["extensions"]["retryAfterSeconds"])
    assert "AITASKS_REQUESTS_PER_MINUTE" in error["message"]
    assert count_tasks(limited.database_url) == before


def test_creates_over_the_rate_get_a_typed_rate_limited_result(limited: Stack) -> None:
    key = new_key(limited, f"creates-{uuid.uuid4()}")
    in_a_fresh_window()
    for _ in range(CREATES_PER_MINUTE):
        task = create(limited, key).json()["data"]["createTask"]
        assert task["__typename"] == "Task", task
        # Cancelled, it no longer counts as unfinished: only the rate is reached.
        call(limited, key, CANCEL_TASK, {"id": task["id"]})
    before = count_tasks(limited.database_url)

    over = create(limited, key)

    assert over.status_code == 429
    result = over.json()["data"]["createTask"]
    assert result["__typename"] == "RateLimited"
    assert 1 <= result["retryAfterSeconds"] <= 60
    assert over.headers["retry-after"] == str(result["retryAfterSeconds"])
    assert "AITASKS_CREATES_PER_MINUTE" in result["message"]
    assert count_tasks(limited.database_url) == before


def test_a_caller_with_too_many_unfinished_tasks_must_wait_for_one(limited: Stack) -> None:
    key = new_key(limited, f"unfinished-{uuid.uuid4()}")
    in_a_fresh_window()
    under = [create(limited, key).json()["data"]["createTask"] for _ in range(UNFINISHED_MAX)]
    before = count_tasks(limited.database_url)

    over = create(limited, key)
    call(limited, key, CANCEL_TASK, {"id": under[0]["id"]})
    after_one_ended = create(limited, key).json()["data"]["createTask"]

    assert [task["__typename"] for task in under] == ["Task"] * UNFINISHED_MAX
    assert over.status_code == 429
    result = over.json()["data"]["createTask"]
    assert result["__typename"] == "RateLimited"
    assert result["retryAfterSeconds"] is None
    assert "AITASKS_UNFINISHED_TASKS_MAX" in result["message"]
    assert count_tasks(limited.database_url) == before + 1
    assert after_one_ended["__typename"] == "Task"


def test_a_batch_over_the_operation_limit_is_refused(limited: Stack) -> None:
    key = new_key(limited, f"batch-{uuid.uuid4()}")
    headers = {"authorization": f"Bearer {key}"}
    query = {"query": GET_TASK, "variables": {"id": str(uuid.uuid4())}}

    under = httpx.post(limited.graphql_url, json=[query] * BATCH_MAX, headers=headers)
    over = httpx.post(limited.graphql_url, json=[query] * (BATCH_MAX + 1), headers=headers)

    assert under.status_code == 200
    assert [item["data"]["task"] for item in under.json()] == [None] * BATCH_MAX
    assert over.status_code == 400
    assert "Too many operations" in over.text
