"""Task control end to end, through GraphQL against a real worker: cancel, retry,
priority, delayed start and per-task timeouts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.fixtures.graphql import (
    cancel_task,
    create_task,
    get_task,
    poll_until_finished,
    retry_task,
)
from tests.fixtures.openai_server import OpenAICompatibleServer, echo_chunks
from tests.fixtures.stack import Stack, wait_until
from tests.fixtures.tasks import send_all

# Long enough that a delayed task is surely still waiting while a test acts on it.
LATER_SECONDS = 600


def start_streaming(stack: Stack, prompt: str) -> dict[str, Any]:
    """A slow-echo task, once some of its answer is stored."""
    task = create_task(stack, prompt=prompt, model="slow-echo")

    def streaming() -> dict[str, Any] | None:
        current = get_task(stack, task["id"])
        return current if current and current["result"] else None

    started: dict[str, Any] = wait_until(streaming, 30, "the task to stream some text")
    return started


def test_cancelling_a_pending_task_ends_it_at_once_and_it_never_runs(
    stack: Stack, openai_server: OpenAICompatibleServer
) -> None:
    task = create_task(stack, prompt="Never mind", model="echo", delaySeconds=LATER_SECONDS)
    assert task["status"] == "PENDING" and task["scheduledFor"] is not None

    cancelled = cancel_task(stack, task["id"])
    again = cancel_task(stack, task["id"])
    # Even a message for it (a late or duplicate one) runs nothing: a task sent after it
    # on the same queue completes, and the cancelled one is still untouched.
    send_all(stack, [task["id"]])
    poll_until_finished(stack, create_task(stack, prompt="after it", model="echo")["id"])

    assert cancelled["__typename"] == "Task" and cancelled["status"] == "CANCELLED"
    assert cancelled["stage"] == "cancelled" and cancelled["finishedAt"] is not None
    assert again == cancelled, "cancelling twice changes nothing"
    assert {"__typename": "Task", **(get_task(stack, task["id"]) or {})} == cancelled
    assert cancelled["attempts"] == 0 and cancelled["startedAt"] is None
    assert "Never mind" not in openai_server.recorded.prompts()


def test_cancelling_a_streaming_task_stops_the_provider_and_keeps_the_text(
    stack: Stack, openai_server: OpenAICompatibleServer
) -> None:
    prompt = "Stop me halfway through"
    running = start_streaming(stack, prompt)

    asked = time.monotonic()
    answer = cancel_task(stack, running["id"])
    final = poll_until_finished(stack, running["id"])
    stopped_after = time.monotonic() - asked

    assert answer["__typename"] == "Task" and answer["cancelRequestedAt"] is not None
    assert final["status"] == "CANCELLED", final
    full = "".join(echo_chunks(prompt, 10))
    assert final["result"] and full.startswith(final["result"]) and final["result"] != full
    wait_until(
        lambda: prompt in openai_server.recorded.abandoned(), 10, "the provider to see the close"
    )
    assert prompt not in openai_server.recorded.finished()
    # A generous bound against a worker that never stops, not a speed measurement.
    assert stopped_after < 5, stopped_after


def test_only_an_unfinished_task_can_be_cancelled(stack: Stack) -> None:
    done = poll_until_finished(stack, create_task(stack, prompt="Done already", model="echo")["id"])

    refused = cancel_task(stack, done["id"])
    unknown = cancel_task(stack, "6f1c1a52-7a0e-4c1e-9f0e-2f7b9d6c1a00")

    assert refused["__typename"] == "TaskStateError" and refused["status"] == "COMPLETED"
    assert "cannot be cancelled" in refused["message"]
    assert get_task(stack, done["id"]) == done
    assert unknown["__typename"] == "TaskNotFound"
    assert cancel_task(stack, "not-an-id")["__typename"] == "TaskNotFound"


def test_retrying_a_failed_task_runs_it_again_and_keeps_its_errors(stack: Stack) -> None:
    failed = poll_until_finished(
        stack, create_task(stack, prompt="Try me", model="unauthorized")["id"]
    )

    retried = retry_task(stack, failed["id"])
    final = poll_until_finished(stack, failed["id"])

    assert retried["__typename"] == "Task"
    assert (retried["status"], retried["error"], retried["finishedAt"]) == ("PENDING", None, None)
    assert retried["errors"] == failed["errors"] and retried["lastError"] == failed["error"]
    assert final["status"] == "FAILED" and final["attempts"] == 2
    assert [error["attempt"] for error in final["errors"]] == [1, 2]


def test_retrying_a_cancelled_task_runs_it_to_completion(stack: Stack) -> None:
    task = create_task(stack, prompt="Second thoughts", model="echo", delaySeconds=LATER_SECONDS)
    cancel_task(stack, task["id"])

    retried = retry_task(stack, task["id"])
    final = poll_until_finished(stack, task["id"])

    assert retried["status"] == "PENDING" and retried["scheduledFor"] is None
    assert final["status"] == "COMPLETED" and final["result"] == "Echo: Second thoughts"


def test_only_a_failed_or_cancelled_task_can_be_retried(stack: Stack) -> None:
    done = poll_until_finished(stack, create_task(stack, prompt="Fine as is", model="echo")["id"])
    waiting = create_task(stack, prompt="Not yet", model="echo", delaySeconds=LATER_SECONDS)

    for task, status in ((done, "COMPLETED"), (waiting, "PENDING")):
        before = get_task(stack, task["id"])
        refused = retry_task(stack, task["id"])
        assert refused["__typename"] == "TaskStateError" and refused["status"] == status
        assert get_task(stack, task["id"]) == before, "a refused retry changes nothing"
    assert retry_task(stack, "6f1c1a52-7a0e-4c1e-9f0e-2f7b9d6c1a00")["__typename"] == "TaskNotFound"
    cancel_task(stack, waiting["id"])


def test_a_high_priority_task_starts_before_a_backlog_of_low_ones(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_api()
    low = [create_task(stack, prompt=f"low {n}", model="echo", priority="LOW") for n in range(50)]
    high = create_task(stack, prompt="urgent", model="echo", priority="HIGH")
    stack.start_worker()

    started = {
        task["id"]: poll_until_finished(stack, task["id"])["startedAt"] for task in [high, *low]
    }

    before_high = [task for task in low if started[task["id"]] < started[high["id"]]]
    # Each of the worker's two processes may already hold one LOW message.
    assert len(before_high) <= 2, len(before_high)


def test_a_delay_longer_than_the_visibility_timeout_runs_exactly_once(
    make_stack: Callable[..., Stack], openai_server: OpenAICompatibleServer
) -> None:
    # A broker message held this long would be handed out a second time.
    visibility = 4.0
    stack = make_stack(
        AITASKS_VISIBILITY_TIMEOUT_SECONDS=str(visibility),
        AITASKS_TASK_TIME_LIMIT_SECONDS="2",
        AITASKS_TASK_TIMEOUT_DEFAULT_SECONDS="2",
        AITASKS_TASK_KILL_GRACE_SECONDS="1",
        AITASKS_SWEEP_INTERVAL_SECONDS="0.5",
    )
    stack.start_worker()
    stack.start_api()
    prompt = "Run me later, once"

    task = create_task(stack, prompt=prompt, model="echo", delaySeconds=2.5 * visibility)
    assert get_task(stack, task["id"])["status"] == "PENDING"  # type: ignore[index]
    final = poll_until_finished(stack, task["id"])
    # Past another visibility timeout, nothing has run it again.
    later = create_task(stack, prompt="marker", model="echo", delaySeconds=visibility + 1)
    poll_until_finished(stack, later["id"])

    assert final["status"] == "COMPLETED" and final["attempts"] == 1
    assert final["startedAt"] >= final["scheduledFor"]
    assert openai_server.recorded.prompts().count(prompt) == 1
    assert get_task(stack, task["id"]) == final


def test_a_task_past_its_timeout_fails_and_the_next_task_runs(stack: Stack) -> None:
    slow = create_task(stack, prompt="Take your time", model="slow-echo", timeoutSeconds=1)

    final = poll_until_finished(stack, slow["id"])
    after = poll_until_finished(stack, create_task(stack, prompt="Next!", model="echo")["id"])

    assert final["status"] == "FAILED" and final["attempts"] == 1
    assert final["error"] == "The task timed out: it ran longer than its limit of 1 s."
    assert final["timeoutSeconds"] == 1
    assert after["status"] == "COMPLETED"
