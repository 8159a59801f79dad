"""`taskStatus` over graphql-transport-ws, against a real API, worker, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError

from persistence.settings import Settings
from tests.fixtures.graphql import (
    FOLLOW_TIMEOUT_SECONDS,
    create_task,
    feed,
    follow,
    get_task,
    poll_until_finished,
    subscribe,
    watch,
    watch_many,
)
from tests.fixtures.openai_server import TOKEN_COUNT, token_chunks
from tests.fixtures.redis_server import RestartableRedis
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import change_task, insert_pending_task, logged_events, send_all

pytestmark = pytest.mark.anyio
# The defaults of the stream_flush_* settings, which the stacks here keep.
STREAM_FLUSH_CHARS = Settings.model_fields["stream_flush_chars"].default
STREAM_FLUSH_SECONDS = Settings.model_fields["stream_flush_seconds"].default
SUBSCRIBERS = 5


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


def test_clients_on_two_api_processes_see_the_same_changes(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_worker()
    stack.start_api()
    other_api = Stack(stack.database_url, stack.redis_url, stack.env, stack.log_dir)
    other_api.processes = stack.processes  # stopped with the stack it belongs to
    other_api.start_api()
    task = create_task(stack, prompt="Created here, watched there", model="slow-echo")

    async def both() -> list[list[dict[str, Any]]]:
        return list(
            await asyncio.gather(
                follow(stack, task["id"], after=0), follow(other_api, task["id"], after=0)
            )
        )

    here, there = asyncio.run(both())

    assert here == there
    assert [update["sequence"] for update in here] == list(range(1, len(here) + 1))
    assert here[-1]["task"] == poll_until_finished(stack, task["id"])


async def test_a_client_that_reconnects_with_after_gets_exactly_the_rest(stack: Stack) -> None:
    task = create_task(stack, prompt="Resume me halfway", model="slow-echo")
    before: list[dict[str, Any]] = []
    async with aclosing(watch(stack, task["id"])) as updates:
        async for update in updates:
            before.append(update)
            if update["delta"]:
                break  # the connection drops in the middle of the answer

    after = await follow(stack, task["id"], after=before[-1]["sequence"])

    first = before[-1]["sequence"]
    assert [update["sequence"] for update in after] == list(
        range(first + 1, first + 1 + len(after))
    )
    assert after[-1]["status"] == "COMPLETED"
    text = before[0]["task"]["result"] or ""
    text += "".join(update["delta"] or "" for update in before[1:] + after)
    assert text == after[-1]["task"]["result"] == "Echo: Resume me halfway"


async def test_streamed_deltas_add_up_to_the_result_in_few_writes(stack: Stack) -> None:
    task = create_task(stack, prompt="Stream a thousand tokens", model="thousand-tokens")

    updates = await follow(stack, task["id"], after=0)

    final = updates[-1]["task"]
    expected = "".join(token_chunks(TOKEN_COUNT))
    assert "".join(update["delta"] or "" for update in updates) == final["result"] == expected
    assert [update["sequence"] for update in updates] == list(range(1, len(updates) + 1))
    assert "generating" in {update["stage"] for update in updates}
    assert final["stage"] == "done"
    # Each write is one logged change: at most one per STREAM_FLUSH_CHARS of text or per
    # STREAM_FLUSH_SECONDS of running, plus the creation, the claim and the completion.
    writes = len(await asyncio.to_thread(logged_events, stack.database_url, task["id"]))
    running = datetime.fromisoformat(final["finishedAt"]) - datetime.fromisoformat(
        final["startedAt"]
    )
    bound = 3 + len(expected) / STREAM_FLUSH_CHARS + running.total_seconds() / STREAM_FLUSH_SECONDS
    assert writes <= bound + 1, (writes, bound)
    assert writes < TOKEN_COUNT / 10
    assert len(updates) == writes  # one message per write


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


def test_subscribers_get_every_change_across_a_redis_restart(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    redis = RestartableRedis(tmp_path / "redis").start()
    try:
        stack = make_stack(AITASKS_REDIS_URL=redis.url)
        stack.start_api()
        waiting = insert_pending_task(stack.database_url, "across a restart")
        task_id = str(waiting.id)

        def change(steps: list[str], announce: bool) -> None:
            change_task(stack.database_url, redis.url, task_id, steps, announce=announce)

        async def scenario() -> list[list[dict[str, Any]]]:
            watchers = [watch(stack, task_id) for _ in range(SUBSCRIBERS)]
            seen = [[await anext(watcher)] for watcher in watchers]
            await asyncio.to_thread(change, ["claim", "output"], True)
            await asyncio.to_thread(redis.stop)
            # Committed while Redis is down: their messages cannot be sent at all.
            await asyncio.to_thread(change, ["output", "output"], False)
            await asyncio.to_thread(redis.start)
            await asyncio.to_thread(change, ["output", "complete"], True)
            for updates, watcher in zip(seen, watchers, strict=True):
                updates += [update async for update in watcher]
            return seen

        everyone = asyncio.run(scenario())
    finally:
        redis.stop()

    final = get_task(stack, task_id)
    for updates in everyone:
        assert [update["sequence"] for update in updates] == [1, 2, 3, 4, 5, 6, 7]
        assert updates[-1]["task"] == final
    assert final is not None and final["result"] == "more more more more by hand"


def test_a_thousand_subscriptions_on_one_api_process_all_get_the_final_state(
    make_stack: Callable[..., Stack],
) -> None:
    # The tasks must wait until every subscription is open, which takes longer than the
    # reconciler waits before it sends a PENDING task whose message never went out.
    stack = make_stack(AITASKS_PENDING_ORPHAN_SECONDS="3600")
    stack.start_worker()
    stack.start_api()
    waiting = [insert_pending_task(stack.database_url, f"crowd {n}", "echo") for n in range(20)]
    task_ids = [str(task.id) for task in waiting] * 50
    results: list[list[dict[str, Any]]] = [[] for _ in task_ids]

    async def scenario() -> None:
        started = asyncio.Event()
        following = asyncio.ensure_future(
            watch_many(stack.ws_url, task_ids, per_connection=100, into=results, started=started)
        )
        # Every subscription is open and has the task PENDING before any task runs.
        await asyncio.wait(
            [following, asyncio.ensure_future(started.wait())],
            timeout=30,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert started.is_set(), "not every subscription got its first update"
        await asyncio.to_thread(send_all, stack, [str(task.id) for task in waiting])
        await following

    asyncio.run(scenario())

    for task_id, updates in zip(task_ids, results, strict=True):
        assert updates[0]["status"] == "PENDING"
        assert updates[-1]["status"] == "COMPLETED", updates
        assert updates[-1]["task"]["result"] == f"Echo: {updates[0]['task']['prompt']}"
        assert [update["sequence"] for update in updates] == list(range(1, len(updates) + 1))
        assert updates[-1]["task"]["id"] == task_id


def test_the_feed_sends_each_tasks_changes_in_order_and_filters_by_status(
    stack: Stack,
) -> None:
    waiting = [insert_pending_task(stack.database_url, f"feed {n}", "slow-echo") for n in range(2)]
    wanted = {str(task.id) for task in waiting}
    everything: list[dict[str, Any]] = []
    finished: list[dict[str, Any]] = []

    def seen(updates: list[dict[str, Any]], task_id: str, status: str) -> bool:
        return any(u["task"]["id"] == task_id and u["status"] == status for u in updates)

    def probe() -> str:
        """A task that completes at once, by hand."""
        task_id = str(insert_pending_task(stack.database_url, "probe").id)
        change_task(
            stack.database_url, stack.redis_url, task_id, ["claim", "complete"], announce=True
        )
        return task_id

    async def collect(updates: AsyncGenerator[Any], into: list[dict[str, Any]]) -> None:
        async with aclosing(updates):
            async for update in updates:
                into.append(update)
                if all(seen(into, task_id, "COMPLETED") for task_id in wanted):
                    return

    async def scenario() -> None:
        async with asyncio.timeout(FOLLOW_TIMEOUT_SECONDS):
            consumers = asyncio.gather(
                collect(feed(stack), everything),
                collect(feed(stack, status=["COMPLETED"]), finished),
            )
            # Both feeds are live once both pass on the completion of a probe task.
            probes = [await asyncio.to_thread(probe)]
            while not all(
                any(seen(updates, task_id, "COMPLETED") for task_id in probes)
                for updates in (everything, finished)
            ):
                probes.append(await asyncio.to_thread(probe))
            await asyncio.to_thread(send_all, stack, sorted(wanted))
            await consumers

    asyncio.run(scenario())

    for task_id in wanted:
        updates = [update for update in everything if update["task"]["id"] == task_id]
        assert [update["sequence"] for update in updates] == list(range(2, 2 + len(updates)))
        assert updates[-1]["task"] == poll_until_finished(stack, task_id)
    assert {update["status"] for update in finished} == {"COMPLETED"}
    assert wanted <= {update["task"]["id"] for update in finished}


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


LIVE_FIELDS = "sequence live task { id status result }"
LIVE_WATCH = f"subscription ($id: ID!) {{ taskStatus(id: $id) {{ {LIVE_FIELDS} }} }}"
LIVE_FEED = f"subscription {{ taskUpdates {{ {LIVE_FIELDS} }} }}"
# The subscriptions read the log this often while the API's Redis is down.
POLL_SECONDS = 0.5
# Long enough that only the outage's polling can bring a change the hub never heard.
RESYNC_SECONDS = 60


def test_subscriptions_keep_moving_from_the_log_while_redis_is_down_marked_not_live(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    redis = RestartableRedis(tmp_path / "redis").start()
    stack = make_stack(
        AITASKS_REDIS_URL=redis.url,
        AITASKS_SUBSCRIPTION_POLL_SECONDS=str(POLL_SECONDS),
        AITASKS_SUBSCRIPTION_RESYNC_SECONDS=str(RESYNC_SECONDS),
    )
    stack.start_api()
    task_id = str(insert_pending_task(stack.database_url, "through an outage").id)
    watchers = [
        subscribe(stack.ws_url, LIVE_WATCH, {"id": task_id}, "taskStatus")
        for _ in range(SUBSCRIBERS)
    ]
    seen: list[list[dict[str, Any]]] = [[] for _ in watchers]
    fed: list[dict[str, Any]] = []
    # The last sequence announced before Redis stops.
    live_until = 0

    def change(steps: list[str], announce: bool) -> Any:
        return asyncio.to_thread(
            change_task, stack.database_url, redis.url, task_id, steps, announce=announce
        )

    async def until(updates: list[dict[str, Any]], source: Any, sequence: int) -> None:
        while not updates or updates[-1]["sequence"] < sequence:
            updates.append(await anext(source))

    async def everyone_at(sequence: int, feed_source: Any) -> None:
        await asyncio.gather(
            until(fed, feed_source, sequence),
            *(until(s, w, sequence) for s, w in zip(seen, watchers, strict=True)),
        )

    async def scenario() -> None:
        nonlocal live_until
        async with asyncio.timeout(FOLLOW_TIMEOUT_SECONDS):
            for updates, watcher in zip(seen, watchers, strict=True):
                updates.append(await anext(watcher))
            feed_source = subscribe(stack.ws_url, LIVE_FEED, {}, "taskUpdates")
            following = asyncio.ensure_future(anext(feed_source))
            await change(["claim"], True)
            # The feed is open once it passes on an announced change.
            while not following.done():
                await change(["output"], True)
                await asyncio.wait([following], timeout=1)
            fed.append(following.result())
            live_until = (await asyncio.to_thread(get_task, stack, task_id))["sequence"]
            await everyone_at(live_until, feed_source)
            await asyncio.to_thread(redis.stop)
            # Committed while Redis is down, so never published: the subscriptions
            # must read them from the log before Redis returns.
            await change(["output", "output"], False)
            await everyone_at(live_until + 2, feed_source)
            await asyncio.to_thread(redis.start)
            # Announced changes until one is heard live again, then the end.
            while fed[-1]["live"] is False or any(s[-1]["live"] is False for s in seen):
                await change(["output"], True)
                await everyone_at(fed[-1]["sequence"] + 1, feed_source)
            await change(["complete"], True)
            await everyone_at(fed[-1]["sequence"] + 1, feed_source)
            for updates, watcher in zip(seen, watchers, strict=True):
                updates += [update async for update in watcher]
            await feed_source.aclose()

    try:
        asyncio.run(scenario())
    finally:
        redis.stop()

    final = get_task(stack, task_id)
    assert final is not None and final["status"] == "COMPLETED"
    outage = [live_until + 1, live_until + 2]
    for updates in [*seen, fed]:
        sequences = [update["sequence"] for update in updates]
        assert sequences == list(range(sequences[0], final["sequence"] + 1)), sequences
        assert updates[-1]["task"]["result"] == final["result"]
        during = [update["live"] for update in updates if update["sequence"] in outage]
        assert during == [False, False], updates
        assert updates[-1]["live"] is True
    for updates in seen:
        assert updates[0]["sequence"] == 1 and updates[0]["live"] is True
