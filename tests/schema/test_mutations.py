"""`createTask`: answers at once, stores only what it can run, never a 500."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest

from tests.fixtures.graphql import (
    CREATE_TASK,
    cancel_task,
    create_task,
    poll_until_finished,
    post,
)
from tests.fixtures.openai_server import OpenAICompatibleServer
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import count_tasks

CONCURRENT_CREATES = 20


DAY = 24 * 3600


def test_create_task_returns_the_pending_task_at_once(stack: Stack) -> None:
    task = create_task(stack, prompt="Summarise the plot of Hamlet")

    assert task["__typename"] == "Task"
    assert task["status"] == "PENDING"
    assert task["sequence"] == 1
    assert task["kind"] == "TEXT_GENERATION"
    assert task["model"] == "demo"
    assert task["progress"] == 0.0
    assert task["result"] is None and task["startedAt"] is None


def test_create_task_with_a_chosen_model_keeps_it(stack: Stack) -> None:
    task = create_task(stack, prompt="hi", model="echo", kind="TEXT_GENERATION")

    assert task["model"] == "echo"


@pytest.mark.parametrize(
    ("task_input", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "The prompt is empty"),
        ({"prompt": " \n\t "}, "prompt", "The prompt is empty"),
        ({"prompt": "x" * 32_001}, "prompt", "32,001 characters long; the limit is 32,000"),
        ({"prompt": "nul \x00 byte"}, "prompt", "NUL character"),
        ({"prompt": "lone \ud800 surrogate"}, "prompt", "not valid Unicode text"),
        ({"prompt": "hi", "model": "de\x00mo"}, "model", "NUL character"),
        ({"prompt": "hi", "model": "\udfff"}, "model", "not valid Unicode text"),
        ({"prompt": "hi", "model": "gpt-nonexistent"}, "model", "Unknown model 'gpt-nonexistent'"),
        ({"prompt": "hi", "model": ""}, "model", "empty or too long"),
        ({"prompt": "hi", "model": "m" * 500}, "model", "empty or too long"),
        ({}, "prompt", "The prompt is empty"),
        ({"prompt": "hi", "delaySeconds": -1}, "delaySeconds", "must be 0 or more"),
        ({"prompt": "hi", "delaySeconds": 31 * DAY}, "delaySeconds", "at most 30 days ahead"),
        ({"prompt": "hi", "runAt": "2099-01-01T00:00:00Z"}, "runAt", "at most 30 days ahead"),
        ({"prompt": "hi", "runAt": "2030-01-01T09:00:00"}, "runAt", "needs a time zone"),
        (
            {"prompt": "hi", "runAt": "2030-01-01T09:00:00Z", "delaySeconds": 5},
            "runAt",
            "either runAt or delaySeconds",
        ),
        ({"prompt": "hi", "timeoutSeconds": 0}, "timeoutSeconds", "more than 0 and at most 1800"),
        ({"prompt": "hi", "timeoutSeconds": 1801}, "timeoutSeconds", "at most 1800"),
        ({"prompt": "hi", "idempotencyKey": ""}, "idempotencyKey", "1 to 200 characters"),
        ({"prompt": "hi", "idempotencyKey": "k" * 201}, "idempotencyKey", "1 to 200"),
        ({"prompt": "hi", "idempotencyKey": "a\x00b"}, "idempotencyKey", "NUL character"),
    ],
)
def test_invalid_input_is_a_validation_error_and_stores_nothing(
    stack: Stack, task_input: dict[str, object], field: str, message: str
) -> None:
    before = count_tasks(stack.database_url)

    result = create_task(stack, **task_input)

    assert result["__typename"] == "ValidationError"
    assert result["field"] == field
    assert message in result["message"]
    assert count_tasks(stack.database_url) == before


def test_a_prompt_at_the_limit_is_accepted(stack: Stack) -> None:
    task = create_task(stack, prompt="y" * 32_000)

    assert task["__typename"] == "Task"
    assert len(task["prompt"]) == 32_000


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "Expected a value of non-null type 'CreateTaskInput!'"),
        ({"input": {"files": [{}]}}, "to include required field 'name'"),
        ({"input": {"prompt": 42}}, "String cannot represent a non string value"),
        ({"input": {"prompt": "hi", "kind": "POETRY"}}, "'POETRY'"),
    ],
)
def test_malformed_variables_get_a_graphql_error_saying_what_is_wrong(
    stack: Stack, variables: dict[str, object], message: str
) -> None:
    body = post(stack, CREATE_TASK, variables)

    assert body.get("data") is None
    assert message in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [("{not json", "application/json"), ("", "application/json"), ("hello", "text/plain")],
)
def test_broken_requests_get_a_4xx_not_a_500(stack: Stack, content: str, content_type: str) -> None:
    response = httpx.post(
        stack.graphql_url, content=content, headers={"content-type": content_type}
    )

    assert 400 <= response.status_code < 500
    assert "Traceback" not in response.text


def test_a_mutation_over_get_is_refused_and_stores_nothing(stack: Stack) -> None:
    before = count_tasks(stack.database_url)

    response = httpx.get(
        stack.graphql_url,
        params={"query": 'mutation { createTask(input: {prompt: "x"}) { __typename } }'},
    )

    assert response.status_code == 400
    assert "mutations are not allowed" in response.text.lower()
    assert count_tasks(stack.database_url) == before


def test_create_task_takes_priority_delay_and_timeout(stack: Stack) -> None:
    task = create_task(
        stack, prompt="Later, urgently", priority="HIGH", delaySeconds=3600, timeoutSeconds=30
    )

    assert (task["priority"], task["timeoutSeconds"], task["status"]) == ("HIGH", 30, "PENDING")
    scheduled = datetime.fromisoformat(task["scheduledFor"])
    created = datetime.fromisoformat(task["createdAt"])
    assert scheduled - created == timedelta(hours=1)
    assert cancel_task(stack, task["id"])["status"] == "CANCELLED"


def test_concurrent_creates_with_one_idempotency_key_make_one_task(
    stack: Stack, openai_server: OpenAICompatibleServer
) -> None:
    key, prompt = f"order-{uuid.uuid4()}", f"Exactly once {uuid.uuid4()}"

    with ThreadPoolExecutor(CONCURRENT_CREATES) as pool:
        results = list(
            pool.map(
                lambda _: create_task(stack, prompt=prompt, model="echo", idempotencyKey=key),
                range(CONCURRENT_CREATES),
            )
        )
    final = poll_until_finished(stack, results[0]["id"])

    assert {result["__typename"] for result in results} == {"Task"}
    assert len({result["id"] for result in results}) == 1
    assert count_tasks(stack.database_url, idempotency_key=key) == 1
    assert final["status"] == "COMPLETED" and final["attempts"] == 1
    assert openai_server.recorded.prompts().count(prompt) == 1
    again = create_task(stack, prompt=prompt, model="echo", idempotencyKey=key)
    assert again["id"] == final["id"] and again["status"] == "COMPLETED"


def test_an_idempotency_key_reused_for_other_input_is_refused(stack: Stack) -> None:
    key = f"order-{uuid.uuid4()}"
    first = create_task(stack, prompt="The first", idempotencyKey=key)
    before = count_tasks(stack.database_url)

    other = create_task(stack, prompt="Something else", idempotencyKey=key)

    assert first["__typename"] == "Task"
    assert other["__typename"] == "ValidationError" and other["field"] == "idempotencyKey"
    assert "different input" in other["message"]
    assert count_tasks(stack.database_url) == before
