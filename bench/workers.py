"""Celery workers in a benchmark: started and waited for, and their memory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
from sqlalchemy import text

from bench.processes import Child
from bench.stack import Stack
from persistence.database import create_engine

# Celery logs "<hostname> ready." once the worker consumes.
READY_MARK = " ready."
WORKER_START_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1
FINISH_POLL_SECONDS = 0.25
APPLICATION_NAME = "aitasks-bench-progress"
PROGRESS = text(
    "SELECT count(*) FILTER (WHERE status = 'COMPLETED'),"
    " count(*) FILTER (WHERE status IN ('FAILED', 'CANCELLED')),"
    " min(created_at), min(started_at), max(finished_at), avg(sequence)"
    " FROM tasks WHERE created_at >= :since"
)
NOW = text("SELECT now()")


async def start_worker(bench: Stack, name: str, module: str, **settings: str) -> Child:
    """`python -m module` with these AITASKS_ settings, once its worker consumes."""
    log_path = bench.log_dir / f"{name}.log"
    # A worker of the same name may have logged before: read only what this one writes.
    start = log_path.stat().st_size if log_path.exists() else 0
    child = await bench.start_process(name, ["-m", module], bench.env(**settings))
    deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
    while READY_MARK not in _read_from(log_path, start):
        if child.process.returncode is not None:
            raise child.failure("exited while starting")
        if time.monotonic() > deadline:
            raise child.failure(f"was not ready within {WORKER_START_TIMEOUT_SECONDS:g} s")
        await asyncio.sleep(POLL_SECONDS)
    return child


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@dataclass(frozen=True)
class Memory:
    """A process and its children: resident memory summed (pages shared after the fork
    count once per process), and proportional (each shared page split between them)."""

    processes: int
    rss: int
    pss: int


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of a process and its living children so far."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy so far, summed over its cores."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def tree_memory(pid: int) -> Memory:
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    infos = [process.memory_full_info() for process in processes]
    return Memory(
        len(processes), sum(int(info.rss) for info in infos), sum(int(info.pss) for info in infos)
    )


@dataclass(frozen=True)
class Finished:
    # From the first task's creation, and from the first claim, to the last one's end.
    seconds: float
    worker_seconds: float
    # Changes per task, its creation included: each a transaction and a PUBLISH.
    changes: float


class Progress:
    """What PostgreSQL says about the tasks created since a point in its time."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url, APPLICATION_NAME)

    async def now(self) -> datetime:
        async with self.engine.connect() as connection:
            return (await connection.execute(NOW)).scalar_one()  # type: ignore[no-any-return]

    async def wait_finished(self, since: datetime, count: int) -> Finished:
        """Until the `count` tasks created since `since` are all COMPLETED (wrap in a
        timeout)."""
        while True:
            async with self.engine.connect() as connection:
                row = (await connection.execute(PROGRESS, {"since": since})).one()
            completed, failed, created, started, finished, changes = row
            if failed:
                raise RuntimeError(f"{failed} tasks did not complete")
            if completed == count:
                return Finished(
                    (finished - created).total_seconds(),
                    (finished - started).total_seconds(),
                    float(changes),
                )
            await asyncio.sleep(FINISH_POLL_SECONDS)

    async def close(self) -> None:
        await self.engine.dispose()
