"""`taskStatus` over graphql-transport-ws, against a real API, worker, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from gql.transport.exceptions import TransportQueryError

from tests.fixtures.graphql import create_task, follow, poll_until_finished, watch
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import change_task, insert_pending_task

pytestmark = pytest.mark.anyio


async def test_subscription_yields_pending_processing_completed_in_order(stack: Stack) -> None:
    task = create_task(stack, prompt="Write a haiku about queues", model="demo")

    updates = await follow(stack, task["id"])

    statuses = [update["status"] for update in updates]
    assert statuses[-1] == "COMPLETED"
    assert "PROCESSING" in statuses
    # The subscription may start after the worker has claimed the task; whatever it
    # starts from, it only moves forward.
    order = ["PENDING", "PROCESSING", "COMPLETED"]
    assert [order.index(status) for status in statuses] == sorted(order.index(s) for s in statuses)
    sequences = [update["sequence"] for update in updates]
    assert sequences == sorted(set(sequences)), "sequences must strictly increase"
    final = updates[-1]["task"]
    assert final["result"].startswith("[demo model: offline")
    assert "Write a haiku about queues" in final["result"]
    assert final["progress"] == 1.0
    assert final["finishedAt"] is not None
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress), "progress never goes backwards"


async def test_subscription_after_completion_yields_final_state_and_completes(stack: Stack) -> None:
    task = create_task(stack, prompt="Already done", model="demo")
    finished = poll_until_finished(stack, task["id"])

    updates = await follow(stack, task["id"])

    assert len(updates) == 1
    assert updates[0]["status"] == "COMPLETED"
    assert updates[0]["sequence"] == finished["sequence"]
    assert updates[0]["task"] == finished


async def test_subscription_after_final_sequence_yields_nothing_and_completes(stack: Stack) -> None:
    task = create_task(stack, prompt="Seen it all", model="demo")
    finished = poll_until_finished(stack, task["id"])

    assert await follow(stack, task["id"], after=finished["sequence"]) == []


async def test_polling_gives_the_same_result_as_the_subscription(stack: Stack) -> None:
    task = create_task(stack, prompt="Same answer both ways", model="demo")

    updates = await follow(stack, task["id"])
    polled = poll_until_finished(stack, task["id"])

    assert polled == updates[-1]["task"]


@pytest.mark.parametrize("task_id", ["6f1c1a52-7a0e-4c1e-9f0e-2f7b9d6c1a00", "not-a-task-id"])
async def test_subscription_to_unknown_task_is_an_error(stack: Stack, task_id: str) -> None:
    with pytest.raises(TransportQueryError) as raised:
        await follow(stack, task_id)

    assert "No task with id" in str(raised.value)
    errors = raised.value.errors or []
    assert errors and errors[0]["extensions"]["code"] == "NOT_FOUND"


def test_a_subscription_on_another_api_process_sees_every_change(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_worker()
    stack.start_api()
    other_api = Stack(stack.database_url, stack.redis_url, stack.env, stack.log_dir)
    other_api.processes = stack.processes  # stopped with the stack it belongs to
    other_api.start_api()
    task = create_task(stack, prompt="Created here, watched there", model="demo")

    updates = asyncio.run(follow(other_api, task["id"]))

    assert updates[-1]["status"] == "COMPLETED"
    assert updates[-1]["task"] == poll_until_finished(stack, task["id"])


async def test_resuming_after_a_sequence_yields_only_later_changes(stack: Stack) -> None:
    task = create_task(stack, prompt="Resume me halfway", model="demo")
    seen = await anext(aiter(watch(stack, task["id"])))

    updates = await follow(stack, task["id"], after=seen["sequence"])

    assert updates, "a running task has later changes"
    assert all(update["sequence"] > seen["sequence"] for update in updates)
    assert updates[-1]["status"] == "COMPLETED"


async def test_a_change_whose_message_was_lost_is_caught_up_from_the_log(
    stack: Stack,
) -> None:
    waiting = await asyncio.to_thread(insert_pending_task, stack.database_url, "lost in transit")
    updates = watch(stack, str(waiting.id))
    assert (await anext(updates))["status"] == "PENDING"

    # The claim's message is lost; the completion's arrives with a gap in `sequence`.
    await asyncio.to_thread(
        change_task, stack.database_url, stack.redis_url, str(waiting.id), ["claim"], announce=False
    )
    await asyncio.to_thread(
        change_task,
        stack.database_url,
        stack.redis_url,
        str(waiting.id),
        ["complete"],
        announce=True,
    )

    rest = [update async for update in updates]
    assert [(update["sequence"], update["status"]) for update in rest] == [
        (2, "PROCESSING"),
        (3, "COMPLETED"),
    ]
    assert rest[-1]["task"]["result"] == "by hand"
    assert rest[-1]["delta"] == "by hand"


def test_a_quiet_subscription_notices_changes_nobody_announced(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(AITASKS_SUBSCRIPTION_RESYNC_SECONDS="0.5")
    stack.start_api()
    waiting = insert_pending_task(stack.database_url, "silently done")

    async def scenario() -> list[dict[str, object]]:
        updates = watch(stack, str(waiting.id))
        first = await anext(updates)
        await asyncio.to_thread(
            change_task,
            stack.database_url,
            stack.redis_url,
            str(waiting.id),
            ["claim", "complete"],
            announce=False,
        )
        return [first] + [update async for update in updates]

    updates = asyncio.run(scenario())

    assert [update["status"] for update in updates] == ["PENDING", "PROCESSING", "COMPLETED"]
