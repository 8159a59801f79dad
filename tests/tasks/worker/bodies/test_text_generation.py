"""Text generation through the real `openai` SDK against a local OpenAI-compatible server."""

from __future__ import annotations

import pytest

from persistence.settings import Settings
from tests.conftest import TEST_OPENAI_KEY
from tests.fixtures.graphql import create_task, follow, poll_until_finished
from tests.fixtures.openai_server import (
    ERROR_MESSAGE,
    FLAKY_FAILURES,
    RATE_LIMIT_MESSAGE,
    UNAUTHORIZED_MESSAGE,
    OpenAICompatibleServer,
)
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.anyio
RETRY_ATTEMPTS = Settings.model_fields["retry_attempts"].default


async def test_a_streamed_completion_becomes_the_result(
    stack: Stack, openai_server: OpenAICompatibleServer
) -> None:
    task = create_task(stack, prompt="Tell me about streams", model="echo")

    updates = await follow(stack, task["id"])

    final = updates[-1]["task"]
    assert final["status"] == "COMPLETED"
    assert final["result"] == "Echo: Tell me about streams"
    assert final["error"] is None
    request = next(
        seen
        for seen in openai_server.recorded.requests
        if seen["body"]["messages"][-1]["content"] == "Tell me about streams"
    )
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "echo"
    assert request["body"]["stream"] is True
    assert request["authorization"] == f"Bearer {TEST_OPENAI_KEY}"


def test_a_provider_that_keeps_answering_500_fails_the_task_after_every_try(
    stack: Stack,
) -> None:
    task = create_task(stack, prompt="Break, please", model="fail-500")

    final = poll_until_finished(stack, task["id"])

    assert final["status"] == "FAILED"
    assert final["result"] is None
    assert "HTTP 500" in final["error"]
    assert ERROR_MESSAGE in final["error"]
    assert final["finishedAt"] is not None
    assert final["attempts"] == RETRY_ATTEMPTS
    assert [error["transient"] for error in final["errors"]] == [True] * (RETRY_ATTEMPTS - 1) + [
        False
    ]


def test_a_rate_limited_provider_is_retried_until_it_answers(stack: Stack) -> None:
    task = create_task(stack, prompt="Busy, busy", model="flaky-429")

    final = poll_until_finished(stack, task["id"])

    assert final["status"] == "COMPLETED"
    assert final["result"] == "Echo: Busy, busy"
    assert final["attempts"] == FLAKY_FAILURES + 1
    assert [error["attempt"] for error in final["errors"]] == [1, 2]
    assert all(RATE_LIMIT_MESSAGE in error["message"] for error in final["errors"])
    assert final["lastError"] == final["errors"][-1]["message"]


def test_a_refused_key_fails_the_task_at_once_with_the_providers_message(stack: Stack) -> None:
    task = create_task(stack, prompt="Let me in", model="unauthorized")

    final = poll_until_finished(stack, task["id"])

    assert final["status"] == "FAILED"
    assert final["attempts"] == 1
    assert "HTTP 401" in final["error"] and UNAUTHORIZED_MESSAGE in final["error"]
    assert len(final["errors"]) == 1 and not final["errors"][0]["transient"]


def test_a_provider_that_does_not_answer_fails_the_task_with_a_timeout(stack: Stack) -> None:
    task = create_task(stack, prompt="Are you there?", model="hang")

    final = poll_until_finished(stack, task["id"])

    assert final["status"] == "FAILED"
    assert final["error"] == "The model provider did not answer within 2 seconds."
    assert final["attempts"] == RETRY_ATTEMPTS
