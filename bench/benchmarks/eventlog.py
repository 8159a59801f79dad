"""The event-log choice: the change log in PostgreSQL vs a Redis stream per task."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.core import Benchmark, Figure, Report, format_number, median, percentile
from bench.stack import Context, stack
from persistence import repository, task_writes
from persistence.database import create_engine, create_pool, create_sessionmaker
from persistence.models import Task, TaskChange, TaskEvent
from tasks import events

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
same PostgreSQL and Redis, each change written as a worker writes it (one statement on a
pooled asyncpg connection, committing by itself), timed from taking the connection until
the commit and anything done after it returned. (a) the conditional `tasks` UPDATE alone
(`task_writes.record_output`'s statement without the log); (b) `task_writes.record_output`
as it is: the UPDATE and the `task_events` INSERT in one statement; (c) the UPDATE alone,
then `XADD` of the encoded event to a per-task Redis stream with `MAXLEN ~ {STREAM_MAXLEN}`
(the alternative design); (d) what a worker does today: (b), then the pub/sub `PUBLISH`.
{TASKS_PER_VARIANT} tasks per variant, {BATCH} changes per variant in turn, {ROUNDS} rounds
in shuffled order: {BATCH * ROUNDS:,} changes each, side by side in one run. Catch-up reads:
{EVENTS_PER_READ} events of one task, {READS} times each, alternating: `repository.list_events`
in a short session (as a subscriber catching up does) vs `XRANGE ... COUNT
{EVENTS_PER_READ}` plus decoding each entry into a `TaskEvent`."""

Write = Callable[[asyncpg.Connection, uuid.UUID, int], Awaitable[TaskChange | None]]

# `task_writes.RECORD_OUTPUT` without its `task_events` INSERT.
UPDATE_ALONE = """
    UPDATE tasks SET sequence = sequence + 1, updated_at = now(),
        result = coalesce(result || $2::text, result, $2::text), progress = 0.5,
        stage = 'generating', lease_expires_at = now() + $4::interval
    WHERE id = $1 AND status = 'PROCESSING' AND attempts = $3
    RETURNING *"""


async def _update_alone(
    connection: asyncpg.Connection, task_id: uuid.UUID, attempt: int
) -> TaskChange | None:
    """`record_output`'s UPDATE, without appending to `task_events`."""
    lease = timedelta(seconds=LEASE_SECONDS)
    row = await connection.fetchrow(UPDATE_ALONE, task_id, DELTA, attempt, lease)
    if row is None:
        return None
    task = Task.from_row(row)
    return TaskChange(task, TaskEvent.of(task, delta=DELTA))


async def _update_and_log(
    connection: asyncpg.Connection, task_id: uuid.UUID, attempt: int
) -> TaskChange | None:
    return await task_writes.record_output(
        connection,
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
    pool: asyncpg.Pool, redis: Redis, variant: Variant, task_id: uuid.UUID
) -> None:
    started = time.perf_counter()
    async with pool.acquire() as connection:
        made = await variant.write(connection, task_id, variant.attempts[task_id])
    if made is None:
        raise RuntimeError(f"{variant.label}: the change to {task_id} was refused")
    if variant.after_commit is not None:
        await variant.after_commit(redis, made.event)
    variant.timings.append(time.perf_counter() - started)


async def _claim(pool: asyncpg.Pool, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    attempts = {}
    for task_id in task_ids:
        async with pool.acquire() as connection:
            change = await task_writes.claim_task(connection, task_id, LEASE_SECONDS, MAX_ATTEMPTS)
        if change is None:
            raise RuntimeError(f"could not claim {task_id}")
        attempts[task_id] = change.task.attempts
    return attempts


async def _writes(pool: asyncpg.Pool, redis: Redis, variants: list[Variant]) -> None:
    shuffle = random.Random(0)
    for round_number in range(ROUNDS):
        for variant in shuffle.sample(variants, len(variants)):
            for number in range(BATCH):
                task_id = variant.task_ids[(round_number * BATCH + number) % len(variant.task_ids)]
                await _timed_change(pool, redis, variant, task_id)


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
        pool = await create_pool(engine, APPLICATION_NAME, max_size=1)
        try:
            sessionmaker = create_sessionmaker(engine)
            for number, (label, write, after_commit) in enumerate(labels):
                task_ids = [
                    uuid.UUID(task_id)
                    for task_id in created[number * TASKS_PER_VARIANT :][:TASKS_PER_VARIANT]
                ]
                attempts = await _claim(pool, task_ids)
                variants.append(Variant(label, write, after_commit, task_ids, attempts, []))
            await _writes(pool, redis, variants)
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
            await pool.close()
            await engine.dispose()
    return _report(variants, from_log, from_stream)


BENCHMARK = Benchmark(
    name="eventlog",
    title="Event log: task_events in PostgreSQL vs a Redis stream per task",
    method=METHOD,
    time_limit_seconds=150.0,
    run=run,
)
