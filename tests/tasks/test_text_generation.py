"""Text generation through the real `openai` SDK against a local OpenAI-compatible server."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_OPENAI_KEY
from tests.fixtures.graphql import create_task, follow, poll_until_finished
from tests.fixtures.openai_server import ERROR_MESSAGE, OpenAICompatibleServer
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.anyio


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


def test_a_provider_500_fails_the_task_with_its_message(stack: Stack) -> None:
    task = create_task(stack, prompt="Break, please", model="fail-500")

    final = poll_until_finished(stack, task["id"])

    assert final["status"] == "FAILED"
    assert final["result"] is None
    assert "HTTP 500" in final["error"]
    assert ERROR_MESSAGE in final["error"]
    assert final["finishedAt"] is not None


def test_a_provider_that_does_not_answer_fails_the_task_with_a_timeout(stack: Stack) -> None:
    task = create_task(stack, prompt="Are you there?", model="hang")

    final = poll_until_finished(stack, task["id"])

    assert final["status"] == "FAILED"
    assert final["error"] == "The model provider did not answer within 2 seconds."
