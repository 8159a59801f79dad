"""No task is lost and none finishes twice: lost messages, dead workers, a broker that is down.

These stacks run with short leases and a fast sweeper, so recovery happens in test time.
The lease is still long enough that a worker slowed down by a busy machine keeps its
claim: a shorter one made a loaded run take tasks over from live workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.fixtures.graphql import create_task, follow, get_task, poll_until_finished
from tests.fixtures.openai_server import OpenAICompatibleServer
from tests.fixtures.stack import Stack, wait_until
from tests.fixtures.tasks import change_task, insert_pending_task, read_task

FAST_RECOVERY = {
    "AITASKS_TASK_LEASE_SECONDS": "5",
    "AITASKS_PENDING_REQUEUE_SECONDS": "1",
    "AITASKS_SWEEP_INTERVAL_SECONDS": "0.5",
}


def test_a_task_whose_worker_was_killed_completes_exactly_once(
    make_stack: Callable[..., Stack], openai_server: OpenAICompatibleServer
) -> None:
    stack = make_stack(**FAST_RECOVERY)
    doomed = stack.start_worker()
    stack.start_api()
    prompt = "Survive a crash"
    task_id = start_slow_task(stack, openai_server, prompt)

    doomed.kill()
    stack.start_worker()
    updates = asyncio.run(follow(stack, task_id))

    statuses = [update["status"] for update in updates]
    assert statuses.count("COMPLETED") == 1 and statuses[-1] == "COMPLETED"
    final = updates[-1]["task"]
    assert final["result"] == f"Echo: {prompt}"
    assert read_task(stack.database_url, task_id).attempts == 2
    assert openai_server.recorded.prompts().count(prompt) == 2
    assert openai_server.recorded.finished().count(prompt) == 1


def test_a_task_whose_message_was_never_sent_is_picked_up_by_the_sweeper(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(**FAST_RECOVERY)
    stack.start_worker()
    stack.start_api()
    orphan = insert_pending_task(stack.database_url, "Nobody sent me")

    final = poll_until_finished(stack, str(orphan.id))

    assert final["status"] == "COMPLETED"
    assert "Nobody sent me" in final["result"]
    assert read_task(stack.database_url, str(orphan.id)).attempts == 1


def test_create_task_answers_while_the_broker_is_down_and_the_task_still_runs(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(**FAST_RECOVERY)
    stack.start_worker()
    # An API whose Redis is unreachable (nothing listens on port 1) but whose database works.
    api = stack.start_api(AITASKS_REDIS_URL="redis://127.0.0.1:1/0")

    task = create_task(stack, prompt="Queue me later")

    assert task["__typename"] == "Task"
    assert task["status"] == "PENDING"
    assert f"task {task['id']} not enqueued now" in api.log()
    final = poll_until_finished(stack, task["id"])
    assert final["status"] == "COMPLETED"


def start_slow_task(stack: Stack, openai_server: OpenAICompatibleServer, prompt: str) -> str:
    task = create_task(stack, prompt=prompt, model="slow-echo")
    try:
        wait_until(
            lambda: (
                prompt in openai_server.recorded.prompts()
                and (get_task(stack, task["id"]) or {}).get("status") == "PROCESSING"
            ),
            30,
            "the worker to start streaming the task",
        )
    except AssertionError as timeout:
        stored = read_task(stack.database_url, str(task["id"]))
        state = f"the task: {stored.status}, attempts {stored.attempts}, errors {stored.errors}"
        raise AssertionError(f"{timeout}\n{state}\n{stack.log_tails()}") from None
    return str(task["id"])


def test_a_worker_that_lost_its_claim_stops_streaming_and_writes_nothing(
    make_stack: Callable[..., Stack], openai_server: OpenAICompatibleServer
) -> None:
    stack = make_stack(**FAST_RECOVERY)
    stack.start_worker()
    stack.start_api()
    prompt = "Taken away from me"
    task_id = start_slow_task(stack, openai_server, prompt)

    change_task(stack.database_url, stack.redis_url, task_id, ["take over"], announce=True)

    wait_until(
        lambda: prompt in openai_server.recorded.abandoned(), 15, "the provider stream to close"
    )
    assert prompt not in openai_server.recorded.finished()
    stored = read_task(stack.database_url, task_id)
    assert (stored.status, stored.attempts, stored.result) == ("PROCESSING", 2, None)


def test_a_task_that_keeps_losing_its_worker_ends_failed(
    make_stack: Callable[..., Stack], openai_server: OpenAICompatibleServer
) -> None:
    stack = make_stack(**FAST_RECOVERY, AITASKS_MAX_ATTEMPTS="1")
    doomed = stack.start_worker()
    stack.start_api()
    task_id = start_slow_task(stack, openai_server, "Crash me once")

    doomed.kill()
    stack.start_worker()
    final = poll_until_finished(stack, task_id)

    assert final["status"] == "FAILED"
    assert "lost on each of 1 attempts" in final["error"]
