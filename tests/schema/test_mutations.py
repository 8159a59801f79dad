"""`createTask`: answers at once, stores only what it can run, never a 500."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from persistence.database import create_engine
from persistence.models import Task
from tests.fixtures.graphql import CREATE_TASK, create_task, post
from tests.fixtures.stack import Stack


def count_tasks(stack: Stack) -> int:
    async def count() -> int:
        engine = create_engine(stack.database_url, "aitasks-tests")
        try:
            async with engine.connect() as connection:
                return int(await connection.scalar(select(func.count()).select_from(Task)) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


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
        ({"prompt": "hi", "kind": "IMAGE_PROCESSING"}, "kind", "IMAGE_PROCESSING tasks are not"),
        ({"prompt": "hi", "kind": "DATA_ANALYSIS"}, "kind", "DATA_ANALYSIS tasks are not"),
    ],
)
def test_invalid_input_is_a_validation_error_and_stores_nothing(
    stack: Stack, task_input: dict[str, str], field: str, message: str
) -> None:
    before = count_tasks(stack)

    result = create_task(stack, **task_input)

    assert result["__typename"] == "ValidationError"
    assert result["field"] == field
    assert message in result["message"]
    assert count_tasks(stack) == before


def test_a_prompt_at_the_limit_is_accepted(stack: Stack) -> None:
    task = create_task(stack, prompt="y" * 32_000)

    assert task["__typename"] == "Task"
    assert len(task["prompt"]) == 32_000


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "Expected a value of non-null type 'CreateTaskInput!'"),
        ({"input": {}}, "to include required field 'prompt'"),
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
    before = count_tasks(stack)

    response = httpx.get(
        stack.graphql_url,
        params={"query": 'mutation { createTask(input: {prompt: "x"}) { __typename } }'},
    )

    assert response.status_code == 400
    assert "mutations are not allowed" in response.text.lower()
    assert count_tasks(stack) == before
