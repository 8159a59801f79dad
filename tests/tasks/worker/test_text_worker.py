"""One text worker process streams several text tasks at once, up to its slots."""

from __future__ import annotations

from collections.abc import Callable

from tests.fixtures.graphql import create_task, poll_until_finished
from tests.fixtures.openai_server import OpenAICompatibleServer
from tests.fixtures.stack import Stack, wait_until


def test_a_text_worker_streams_as_many_tasks_at_once_as_it_has_slots(
    make_stack: Callable[..., Stack], openai_server: OpenAICompatibleServer
) -> None:
    stack = make_stack(AITASKS_TEXT_SLOTS_PER_PROCESS="2")
    stack.start_worker("--queues", "text_generation", "--no-beat")
    stack.start_api()
    prompts = [f"Side by side, number {number}" for number in range(3)]
    tasks = [create_task(stack, prompt=prompt, model="slow-echo") for prompt in prompts]

    # Each slow answer takes seconds: two streams open together means two tasks at once.
    wait_until(
        lambda: set(prompts[:2]) <= set(openai_server.recorded.prompts()),
        30,
        "the first two tasks to stream",
    )
    assert not set(prompts[:2]) & set(openai_server.recorded.finished())
    # The third waits for a free slot: it starts only once an answer has ended.
    wait_until(lambda: prompts[2] in openai_server.recorded.prompts(), 60, "the third task")
    assert set(prompts[:2]) & set(openai_server.recorded.finished())
    for task, prompt in zip(tasks, prompts, strict=True):
        final = poll_until_finished(stack, task["id"])
        assert (final["status"], final["result"]) == ("COMPLETED", f"Echo: {prompt}")
