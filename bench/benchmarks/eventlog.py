"""The event-log choice: the change log in PostgreSQL vs a Redis stream per task."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.core import Benchmark, Figure, Report, format_number, median, percentile
from bench.stack import Context, stack
from persistence import events, repository
from persistence.database import create_engine, create_sessionmaker
from persistence.models import Task, TaskChange, TaskEvent
from persistence.repository import _appended, _change, _held, _lease
from persistence.unit_of_work import unit_of_work

TASKS_PER_VARIANT = 20
# Changes per variant per round; the variants take turns, in a new order each round, so
# the machine's noise falls on all of them alike.
BATCH = 25
ROUNDS = 100
READS = 400
EVENTS_PER_READ = 50
# A streaming write's worth of text.
DELTA = "x" * 64
LEASE_SECONDS = 3600.0
MAX_ATTEMPTS = 5
# Entries a per-task stream would keep (the alternative design's bound).
STREAM_MAXLEN = 1000
STREAM_PREFIX = "aitasks:bench:task-stream:"
APPLICATION_NAME = "aitasks-bench-eventlog"
MICROSECONDS = 1e6

METHOD = f"""\
Measured in the runner process (a standard asyncio loop, as a worker has), against the
same PostgreSQL and Redis, each change in its own transaction with the same unit of work
a worker uses, timed from the start of the transaction until the commit and anything done
after it returned. (a) the conditional `tasks` UPDATE alone (`record_output`'s statement
without the log: `repository._transition` minus its INSERT); (b) `repository.record_output`
as it is: the UPDATE and the `task_events` INSERT in one statement; (c) the UPDATE alone,
then `XADD` of the encoded event to a per-task Redis stream with `MAXLEN ~ {STREAM_MAXLEN}`
(the alternative design); (d) what a worker does today: (b), then the pub/sub `PUBLISH`.
{TASKS_PER_VARIANT} tasks per variant, {BATCH} changes per variant in turn, {ROUNDS} rounds
in shuffled order: {BATCH * ROUNDS:,} changes each, side by side in one run. Catch-up reads:
{EVENTS_PER_READ} events of one task, {READS} times each, alternating: `repository.list_events`
in a short session (as a subscriber catching up does) vs `XRANGE ... COUNT
{EVENTS_PER_READ}` plus decoding each entry into a `TaskEvent`."""

Write = Callable[[AsyncSession, uuid.UUID, int], Awaitable[TaskChange | None]]


async def _update_alone(
    session: AsyncSession, task_id: uuid.UUID, attempt: int
) -> TaskChange | None:
    """`record_output`'s UPDATE, without appending to `task_events`."""
    changed = (
        update(Task)
        .where(Task.id == task_id, _held(attempt))
        .values(
            _change(
                progress=0.5,
                stage="generating",
                result=_appended(DELTA),
                lease_expires_at=_lease(LEASE_SECONDS),
            )
        )
        .returning(*Task.__table__.c)
    )
    statement = select(Task).from_statement(changed).execution_options(populate_existing=True)
    task = (await session.execute(statement)).scalar_one_or_none()
    return None if task is None else TaskChange(task, TaskEvent.of(task, delta=DELTA))


async def _update_and_log(
    session: AsyncSession, task_id: uuid.UUID, attempt: int
) -> TaskChange | None:
    return await repository.record_output(
        session,
        task_id,
        attempt,
        delta=DELTA,
        progress=0.5,
        stage="generating",
        lease_seconds=LEASE_SECONDS,
    )


async def _xadd(redis: Redis, event: TaskEvent) -> None:
    key = f"{STREAM_PREFIX}{event.task_id}"
    fields = {"event": events.encode(event)}
    await redis.xadd(key, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]


async def _publish(redis: Redis, event: TaskEvent) -> None:
    await events.publish(redis, event)


@dataclass
class Variant:
    label: str
    write: Write
    after_commit: Callable[[Redis, TaskEvent], Awaitable[None]] | None
    task_ids: list[uuid.UUID]
    attempts: dict[uuid.UUID, int]
    timings: list[float]


async def _timed_change(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    variant: Variant,
    task_id: uuid.UUID,
) -> None:
    started = time.perf_counter()
    async with unit_of_work(sessionmaker) as uow:
        made = await variant.write(uow.session, task_id, variant.attempts[task_id])
        if made is None:
            raise RuntimeError(f"{variant.label}: the change to {task_id} was refused")
        if variant.after_commit is not None:
            uow.after_commit(partial(variant.after_commit, redis, made.event))
    variant.timings.append(time.perf_counter() - started)


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], task_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    attempts = {}
    for task_id in task_ids:
        async with unit_of_work(sessionmaker) as uow:
            change = await repository.claim_task(uow.session, task_id, LEASE_SECONDS, MAX_ATTEMPTS)
            if change is None:
                raise RuntimeError(f"could not claim {task_id}")
            attempts[task_id] = change.task.attempts
    return attempts


async def _writes(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, variants: list[Variant]
) -> None:
    shuffle = random.Random(0)
    for round_number in range(ROUNDS):
        for variant in shuffle.sample(variants, len(variants)):
            for number in range(BATCH):
                task_id = variant.task_ids[(round_number * BATCH + number) % len(variant.task_ids)]
                await _timed_change(sessionmaker, redis, variant, task_id)


async def _read_log(
    sessionmaker: async_sessionmaker[AsyncSession], task_id: uuid.UUID, up_to: int
) -> float:
    started = time.perf_counter()
    async with sessionmaker() as session:
        found = await repository.list_events(
            session, task_id, after=up_to - EVENTS_PER_READ, up_to=up_to
        )
    elapsed = time.perf_counter() - started
    if len(found) != EVENTS_PER_READ:
        raise RuntimeError(f"the log gave {len(found)} events, not {EVENTS_PER_READ}")
    return elapsed


async def _read_stream(redis: Redis, task_id: uuid.UUID) -> float:
    started = time.perf_counter()
    entries: Any = await redis.xrange(f"{STREAM_PREFIX}{task_id}", count=EVENTS_PER_READ)
    found = [events.decode(fields[b"event"].decode()) for _, fields in entries]
    elapsed = time.perf_counter() - started
    if len(found) != EVENTS_PER_READ:
        raise RuntimeError(f"the stream gave {len(found)} events, not {EVENTS_PER_READ}")
    return elapsed


async def _reads(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, logged: Variant, streamed: Variant
) -> tuple[list[float], list[float]]:
    # Every task of a variant has had ROUNDS * BATCH / TASKS_PER_VARIANT changes.
    up_to = 1 + ROUNDS * BATCH // TASKS_PER_VARIANT + 1
    from_log, from_stream = [], []
    for number in range(READS):
        task = number % TASKS_PER_VARIANT
        from_log.append(await _read_log(sessionmaker, logged.task_ids[task], up_to))
        from_stream.append(await _read_stream(redis, streamed.task_ids[task]))
    return from_log, from_stream


def _micro(values: list[float]) -> float:
    return median(values) * MICROSECONDS


def _report(variants: list[Variant], from_log: list[float], from_stream: list[float]) -> Report:
    alone = _micro(variants[0].timings)
    figures = [
        Figure(f"{variant.label}: per change (median)", _micro(variant.timings), "µs")
        for variant in variants
    ]
    figures += [
        Figure(
            f"{variant.label}: cost over the UPDATE alone", _micro(variant.timings) - alone, "µs"
        )
        for variant in variants[1:]
    ]
    figures += [
        Figure(
            f"catch-up: {EVENTS_PER_READ} events from task_events (median)", _micro(from_log), "µs"
        ),
        Figure(f"catch-up: {EVENTS_PER_READ} events by XRANGE (median)", _micro(from_stream), "µs"),
    ]
    rows = [
        f"| {variant.label} | {len(variant.timings):,} | "
        + " | ".join(
            format_number(percentile(variant.timings, percent) * MICROSECONDS)
            for percent in (10, 50, 90, 99)
        )
        + " |"
        for variant in variants
    ]
    rows += [
        f"| catch-up read, {label} | {len(values):,} | "
        + " | ".join(format_number(percentile(values, p) * MICROSECONDS) for p in (10, 50, 90, 99))
        + " |"
        for label, values in (("task_events", from_log), ("XRANGE", from_stream))
    ]
    return Report(
        figures=figures,
        details=[
            "| variant | samples | p10 µs | p50 µs | p90 µs | p99 µs |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ],
    )


async def run(context: Context) -> Report:
    labels = (
        ("(a) UPDATE alone", _update_alone, None),
        ("(b) UPDATE + task_events INSERT, one statement", _update_and_log, None),
        (f"(c) UPDATE, then XADD MAXLEN ~{STREAM_MAXLEN}", _update_alone, _xadd),
        ("(d) today's worker write: (b), then PUBLISH", _update_and_log, _publish),
    )
    async with stack(context, "eventlog") as bench:
        maker = await bench.start_api("api-create")
        created = await maker.create_tasks(TASKS_PER_VARIANT * len(labels))
        await bench.stop_api(maker)
        engine = create_engine(bench.database_url, APPLICATION_NAME)
        redis = Redis.from_url(context.backing.redis_url, client_name=APPLICATION_NAME)
        variants: list[Variant] = []
        try:
            sessionmaker = create_sessionmaker(engine)
            for number, (label, write, after_commit) in enumerate(labels):
                task_ids = [
                    uuid.UUID(task_id)
                    for task_id in created[number * TASKS_PER_VARIANT :][:TASKS_PER_VARIANT]
                ]
                attempts = await _claim(sessionmaker, task_ids)
                variants.append(Variant(label, write, after_commit, task_ids, attempts, []))
            await _writes(sessionmaker, redis, variants)
            from_log, from_stream = await _reads(sessionmaker, redis, variants[1], variants[2])
        finally:
            keys = (
                [f"{STREAM_PREFIX}{task_id}" for task_id in variants[2].task_ids]
                if variants
                else []
            )
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
            await engine.dispose()
    return _report(variants, from_log, from_stream)


BENCHMARK = Benchmark(
    name="eventlog",
    title="Event log: task_events in PostgreSQL vs a Redis stream per task",
    method=METHOD,
    time_limit_seconds=150.0,
    run=run,
)
