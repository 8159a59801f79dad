"""Load generator: changes written as a worker writes them, at a set rate.

Each change is `task_writes.record_output` on a pooled asyncpg connection (it commits by
itself), published on Redis after the commit, exactly as `tasks.worker.runtime.WorkerRuntime.write`
does; the wall-clock time is taken
right after the commit, before the publish, and reported with the change's sequence so
the runner can match it with the time a client received it (same machine, same clock).

Parameters: `database_url`, `redis_url`. Commands: `claim` (task_ids) takes the tasks as a
worker would and replies `claimed`; `run` (rate, count) writes `count` changes at `rate`
per second, round robin over the claimed tasks, and replies `ran` with every change as
[task, sequence, committed, published]; `close` replies `closed`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bench.agents.channel import Channel, run_agent
from persistence import task_writes
from persistence.database import create_engine, create_pool
from persistence.models import TaskChange, TaskEvent
from tasks.events import publish

APPLICATION_NAME = "aitasks-bench-writer"
# Long enough that no claim runs out during a benchmark.
LEASE_SECONDS = 3600.0
MAX_ATTEMPTS = 5
# A short piece of streamed text: what one write of a streaming model appends.
DELTA = " lorem ipsum"
GENERATING_STAGE = "generating"
# The progress each change reports: what it is does not matter here.
PROGRESS = 0.5
# Writes in flight at once, each on a connection of its own: a write waits for the
# database, not for a connection.
CONCURRENCY = 20

Change = tuple[int, int, float, float]


class Writer:
    def __init__(self, database_url: str, redis_url: str) -> None:
        self.engine = create_engine(database_url, APPLICATION_NAME)
        self.pool: asyncpg.Pool | None = None
        self.redis = Redis.from_url(redis_url, client_name=APPLICATION_NAME)
        self.task_ids: list[uuid.UUID] = []
        self.attempts: list[int] = []
        self.locks: list[asyncio.Lock] = []
        self.changes: list[Change] = []

    async def _announce(self, index: int, event: TaskEvent) -> None:
        committed = time.time()
        await publish(self.redis, event)
        self.changes.append((index, event.sequence, committed, time.time()))

    async def write(
        self, index: int, change: Callable[[asyncpg.Connection], Awaitable[TaskChange | None]]
    ) -> TaskChange | None:
        if self.pool is None:
            self.pool = await create_pool(self.engine, APPLICATION_NAME, CONCURRENCY)
        async with self.pool.acquire() as connection:
            made = await change(connection)
        if made is not None:
            await self._announce(index, made.event)
        return made

    async def claim(self, task_ids: list[str]) -> int:
        self.task_ids = [uuid.UUID(task_id) for task_id in task_ids]
        self.attempts = [0] * len(task_ids)
        self.locks = [asyncio.Lock() for _ in task_ids]
        gate = asyncio.Semaphore(CONCURRENCY)

        async def claim_one(index: int) -> None:
            claim = partial(
                task_writes.claim_task,
                task_id=self.task_ids[index],
                lease_seconds=LEASE_SECONDS,
                max_attempts=MAX_ATTEMPTS,
            )
            async with gate:
                change = await self.write(index, claim)
            if change is not None:
                self.attempts[index] = change.task.attempts

        await asyncio.gather(*(claim_one(index) for index in range(len(task_ids))))
        return sum(1 for attempt in self.attempts if attempt)

    async def change(self, index: int) -> None:
        # One writer per task at a time, as in a worker: changes commit (and are
        # published) in sequence order.
        output = partial(
            task_writes.record_output,
            task_id=self.task_ids[index],
            attempt=self.attempts[index],
            delta=DELTA,
            progress=PROGRESS,
            stage=GENERATING_STAGE,
            lease_seconds=LEASE_SECONDS,
        )
        async with self.locks[index]:
            await self.write(index, output)

    async def run(self, rate: float, count: int) -> float:
        """Write `count` changes, the i-th due at start + i / rate (an open loop: a late
        change does not push back the next); return the largest lateness in seconds."""
        gate = asyncio.Semaphore(CONCURRENCY)
        start = time.monotonic()
        late = 0.0

        async def change_gated(index: int) -> None:
            async with gate:
                await self.change(index)

        pending = []
        for number in range(count):
            delay = start + number / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, -delay)
            index = number % len(self.task_ids)
            pending.append(asyncio.create_task(change_gated(index)))
        await asyncio.gather(*pending)
        return late

    def take_changes(self) -> list[Change]:
        changes, self.changes = self.changes, []
        return changes

    def take_ran(self) -> dict[str, Any]:
        """What a "ran" answer reports besides its timing."""
        return {"changes": self.take_changes()}

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self.engine.dispose()
        await self.redis.aclose()


async def main(channel: Channel, params: dict[str, Any]) -> None:
    await serve(channel, Writer(params["database_url"], params["redis_url"]))


async def serve(channel: Channel, writer: Writer) -> None:
    """Answer the benchmark's commands (claim, run, close) with this writer."""
    try:
        while (command := await channel.receive()) is not None:
            if command["command"] == "claim":
                claimed = await writer.claim(command["task_ids"])
                channel.send("claimed", claimed=claimed, changes=writer.take_changes())
            elif command["command"] == "run":
                started = time.monotonic()
                late = await writer.run(command["rate"], command["count"])
                seconds = time.monotonic() - started
                channel.send("ran", **writer.take_ran(), late=late, seconds=seconds)
            elif command["command"] == "close":
                break
    finally:
        await writer.close()
    channel.send("closed")


if __name__ == "__main__":
    run_agent(main)
