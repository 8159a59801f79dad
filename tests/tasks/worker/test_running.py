"""A blocking step in a thread: failures it expects end the task with their message, and
a cancel waits for the step, since a thread cannot be stopped."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tasks.worker.running import WorkFailed, in_thread

pytestmark = pytest.mark.anyio
STEP_SECONDS = 0.3


class StepError(Exception):
    pass


def failing_step() -> None:
    raise StepError("the input is bad")


async def test_an_expected_failure_becomes_the_tasks_message() -> None:
    with pytest.raises(WorkFailed, match="the input is bad"):
        await in_thread(StepError, failing_step)


async def test_a_cancelled_step_is_let_finish_before_the_cancel_goes_on() -> None:
    finished = threading.Event()

    def slow_step() -> None:
        time.sleep(STEP_SECONDS)
        finished.set()

    running = asyncio.ensure_future(in_thread(StepError, slow_step))
    await asyncio.sleep(STEP_SECONDS / 6)
    running.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running
    assert finished.is_set()
