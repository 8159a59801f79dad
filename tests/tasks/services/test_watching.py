"""Following a task in-process against real PostgreSQL and Redis, with the races forced:
changes land between the snapshot and the live feed, messages go missing, a subscriber
falls behind. Whatever the timing, the updates are every change once, in order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from persistence import repository, task_writes
from persistence.database import create_engine, create_sessionmaker
from persistence.models import Task, TaskChange
from persistence.unit_of_work import unit_of_work
from tasks.event_hub import TaskEventHub
from tasks.events import publish
from tasks.services import watching
from tasks.services.callers import DEVELOPMENT_CALLER
from tasks.services.watching import Update, watch_task
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import driver, insert_in_session, new_row

pytestmark = pytest.mark.anyio
LEASE = 60.0
# A bound on each wait in these tests: reaching it is a failure, not a pause.
WAIT_SECONDS = 10.0
MONTH = timedelta(days=30)

# A worker's write, on the driver's connection of a unit of work's session.
Change = Callable[[asyncpg.Connection], Awaitable[TaskChange | None]]


@dataclass
class Services:
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    hub: TaskEventHub

    async def new_task(self) -> Task:
        async with unit_of_work(self.sessionmaker) as uow:
            return await insert_in_session(uow.session, new_row("watched"))

    def watch(self, task: Task, after: int | None = None) -> AsyncIterator[Update]:
        """The task's updates, as its owner follows it (from `after`, when given)."""
        return watch_task(
            self.sessionmaker, self.hub, str(task.id), owner=DEVELOPMENT_CALLER, after=after
        )

    async def change(self, make: Change, *, announce: bool = True) -> TaskChange:
        """Commit a change as a worker does; publish it unless the message is to be lost.

        Returns once this process's hub has delivered the message, so a test knows it
        arrived where it meant it to.
        """
        async with unit_of_work(self.sessionmaker) as uow:
            made = await make(await driver(uow.session))
        assert made is not None
        if announce:
            with self.hub.listen(made.task.id) as probe:
                await publish(self.redis, made.event)
                async with asyncio.timeout(WAIT_SECONDS):
                    while not await probe.wait():
                        pass
        return made


def claim(task_id: uuid.UUID) -> Change:
    return lambda connection: task_writes.claim_task(connection, task_id, LEASE, 5)


def output(task_id: uuid.UUID, text: str) -> Change:
    return lambda connection: task_writes.record_output(
        connection, task_id, 1, delta=text, progress=0.5, stage="generating", lease_seconds=LEASE
    )


def complete(task_id: uuid.UUID, text: str) -> Change:
    return lambda connection: task_writes.complete_task(connection, task_id, 1, text)


@pytest.fixture
async def services(stack: Stack) -> AsyncIterator[Services]:
    engine = create_engine(stack.database_url, "aitasks-tests")
    sessionmaker = create_sessionmaker(engine)
    redis = Redis.from_url(stack.redis_url)
    hub = TaskEventHub(redis, sessionmaker, max_buffered=4, audit_seconds=3600, poll_seconds=3600)
    await hub.start()
    async with asyncio.timeout(WAIT_SECONDS):
        await hub.wait_subscribed()
    yield Services(sessionmaker, redis, hub)
    await hub.close()
    await redis.aclose()
    await engine.dispose()


def sequences(updates: list[Update]) -> list[int]:
    return [update.task.sequence for update in updates]


def deltas(updates: list[Update]) -> str:
    return "".join(update.delta or "" for update in updates)


async def rest_of(updates: AsyncIterator[Update]) -> list[Update]:
    async with asyncio.timeout(WAIT_SECONDS):
        return [update async for update in updates]


async def test_a_change_committed_just_before_the_snapshot_is_delivered_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await services.new_task()
    read_snapshot = watching._load

    async def change_then_read(sessionmaker: object, task_id: uuid.UUID, owner: str) -> Task | None:
        # Subscribed already: the claim's message reaches the subscriber AND the claim is
        # in the snapshot. It must not be delivered twice.
        await services.change(claim(task.id))
        return await read_snapshot(services.sessionmaker, task_id, owner)

    monkeypatch.setattr(watching, "_load", change_then_read)
    updates = services.watch(task)
    first = await anext(updates)
    await services.change(output(task.id, "Hello"))
    await services.change(complete(task.id, ", world"))

    seen = [first, *await rest_of(updates)]
    assert sequences(seen) == [2, 3, 4]
    assert seen[-1].task.result == "Hello, world"


async def test_a_change_committed_just_after_the_snapshot_is_delivered_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await services.new_task()
    read_snapshot = watching._load

    async def read_then_change(sessionmaker: object, task_id: uuid.UUID, owner: str) -> Task | None:
        # The snapshot misses the claim; its message arrives before the live feed starts.
        snapshot = await read_snapshot(services.sessionmaker, task_id, owner)
        await services.change(claim(task.id))
        return snapshot

    monkeypatch.setattr(watching, "_load", read_then_change)
    updates = services.watch(task)
    first = await anext(updates)
    await services.change(complete(task.id, "done"))

    seen = [first, *await rest_of(updates)]
    assert sequences(seen) == [1, 2, 3]
    assert [update.task.status for update in seen] == ["PENDING", "PROCESSING", "COMPLETED"]


async def test_changes_whose_messages_were_lost_are_caught_up_from_the_log(
    services: Services,
) -> None:
    task = await services.new_task()
    updates = services.watch(task)
    await anext(updates)

    for make in (claim(task.id), output(task.id, "a"), output(task.id, "b")):
        await services.change(make, announce=False)
    await services.change(complete(task.id, "c"))

    rest = await rest_of(updates)
    assert sequences(rest) == [2, 3, 4, 5]
    assert [update.delta for update in rest] == [None, "a", "b", "c"]
    assert rest[-1].task.result == "abc"


async def test_the_audit_wakes_a_subscriber_whose_last_change_was_never_published(
    services: Services,
) -> None:
    task = await services.new_task()
    updates = services.watch(task)
    await anext(updates)
    await services.change(claim(task.id))
    # The worker dies between its commit and its publish: no message will ever come.
    await services.change(complete(task.id, "done"), announce=False)

    waiting = asyncio.ensure_future(rest_of(updates))
    async with asyncio.timeout(WAIT_SECONDS):
        while not waiting.done():
            await services.hub.audit()
            await asyncio.sleep(0.05)

    assert sequences(waiting.result()) == [2, 3]


async def test_a_subscriber_that_fell_behind_catches_up_in_order(services: Services) -> None:
    task = await services.new_task()
    updates = services.watch(task)
    await anext(updates)
    await services.change(claim(task.id))
    # Nobody reads the subscription meanwhile: far more than its buffer of 4 piles up.
    words = [f"word{number} " for number in range(30)]
    for word in words:
        await services.change(output(task.id, word))
    await services.change(complete(task.id, "end"))

    rest = await rest_of(updates)
    assert sequences(rest) == list(range(2, 34))
    assert deltas(rest) == "".join(words) + "end" == rest[-1].task.result


async def test_resuming_after_any_sequence_gives_exactly_the_later_changes(
    services: Services,
) -> None:
    task = await services.new_task()
    for make in (claim(task.id), output(task.id, "one "), output(task.id, "two ")):
        await services.change(make)
    await services.change(complete(task.id, "three"))

    for after in range(0, 6):
        resumed = await rest_of(services.watch(task, after=after))
        assert sequences(resumed) == list(range(after + 1, 6)), after
    everything = await rest_of(services.watch(task, after=0))
    assert everything[0].task.status == "PENDING" and everything[0].task.result is None
    assert deltas(everything) == "one two three" == everything[-1].task.result
    assert everything[2].task.result == "one "


async def test_resuming_a_task_whose_log_was_pruned_gives_its_final_state(
    services: Services,
) -> None:
    task = await services.new_task()
    await services.change(claim(task.id))
    await services.change(complete(task.id, "long ago"))
    async with services.sessionmaker.begin() as session:
        # Ended a month ago, so it alone is past a cutoff of a week ago.
        await session.execute(
            update(Task).where(Task.id == task.id).values(finished_at=Task.created_at - MONTH)
        )
        pruned = await repository.prune_events(
            session, finished_before=task.created_at - MONTH / 4, limit=1000
        )
    assert pruned == 3

    resumed = await rest_of(services.watch(task, after=1))

    assert sequences(resumed) == [3]
    assert resumed[0].task.result == "long ago"
