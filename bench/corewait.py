"""Core wait: how long a group of processes ran on a core, and how long it waited for one.

The kernel keeps, per thread, in /proc/<pid>/task/<tid>/schedstat: nanoseconds on a
core, nanoseconds runnable but waiting in a run queue, and timeslices. Read before and
after a round and summed per group (the API, the worker, PostgreSQL...), the second over
the first says how much of a latency is a wake-up waiting for a core: on a machine with
few cores and busy neighbours, every process a task crosses may wait so at each step.

A thread that ends between two readings is not counted (neither reading has its last
figures); one that starts between them counts from its start.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

PROC = Path("/proc")
# `aitasks worker` starts its text worker as `python -m` this (tasks/worker/text_worker.py).
TEXT_WORKER_MODULE = "tasks.worker.text_worker_main"
# The groups a task crosses, in the order it crosses them.
SERVICE = ("API", "Redis", "text worker", "worker", "PostgreSQL")


@dataclass(frozen=True)
class CoreTimes:
    """Nanoseconds on a core and waiting in a run queue."""

    run_ns: int = 0
    wait_ns: int = 0

    def __add__(self, other: CoreTimes) -> CoreTimes:
        return CoreTimes(self.run_ns + other.run_ns, self.wait_ns + other.wait_ns)

    def __sub__(self, other: CoreTimes) -> CoreTimes:
        return CoreTimes(self.run_ns - other.run_ns, self.wait_ns - other.wait_ns)

    @property
    def wait_per_run(self) -> float | None:
        """Milliseconds waited for a core per millisecond run."""
        return self.wait_ns / self.run_ns if self.run_ns else None


# (pid, tid) -> times, per group name.
Snapshot = dict[str, dict[tuple[int, int], CoreTimes]]


def thread_times(pid: int) -> dict[tuple[int, int], CoreTimes]:
    """Every thread of process `pid` (none if it has gone)."""
    times: dict[tuple[int, int], CoreTimes] = {}
    with contextlib.suppress(OSError):
        for task in (PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                run, wait, _slices = (
                    (PROC / str(pid) / "task" / task.name / "schedstat").read_text().split()
                )
                times[(pid, int(task.name))] = CoreTimes(int(run), int(wait))
    return times


def tree(pid: int) -> list[int]:
    """A process and its descendants (those alive now)."""
    try:
        process = psutil.Process(pid)
        return [pid, *(child.pid for child in process.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def snapshot(groups: Mapping[str, Iterable[int]]) -> Snapshot:
    """Every thread's times of each group's processes, now."""
    taken: Snapshot = {}
    for name, pids in groups.items():
        threads: dict[tuple[int, int], CoreTimes] = {}
        for pid in pids:
            threads.update(thread_times(pid))
        taken[name] = threads
    return taken


def difference(before: Snapshot, after: Snapshot) -> dict[str, CoreTimes]:
    """Per group, what its threads (those alive at `after`) did between the two."""
    spent: dict[str, CoreTimes] = {}
    for name, threads in after.items():
        earlier = before.get(name, {})
        total = CoreTimes()
        for key, times in threads.items():
            total += times - earlier.get(key, CoreTimes())
        spent[name] = total
    return spent


def total(spent: dict[str, CoreTimes], names: Iterable[str]) -> CoreTimes:
    summed = CoreTimes()
    for name in names:
        summed += spent.get(name, CoreTimes())
    return summed


def service_groups(
    api_pid: int, worker_pid: int, postgres_pids: Iterable[int], redis_pid: int
) -> dict[str, list[int]]:
    """The processes of an aitasks stack by SERVICE group: `aitasks worker`'s tree
    is split into its text worker (and that one's children) and the rest."""
    worker = tree(worker_pid)
    text_roots = [pid for pid in worker if _is_text_worker(pid)]
    text = [pid for root in text_roots for pid in tree(root)]
    return {
        "API": tree(api_pid),
        "Redis": [redis_pid],
        "text worker": text,
        "worker": [pid for pid in worker if pid not in text],
        "PostgreSQL": list(postgres_pids),
    }


def _is_text_worker(pid: int) -> bool:
    try:
        return TEXT_WORKER_MODULE in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


@dataclass(frozen=True)
class CoreUse:
    """What each group spent over `seconds` of wall time in which `tasks` tasks ended."""

    seconds: float
    tasks: int
    spent: dict[str, CoreTimes]
    # The machine's 1-minute load average at the end.
    load_average: float

    @property
    def service(self) -> CoreTimes:
        return total(self.spent, SERVICE)

    @property
    def cores(self) -> float:
        """Cores the service kept busy, on average."""
        return self.service.run_ns / 1e9 / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_task_ms(self) -> float | None:
        return self.service.run_ns / 1e6 / self.tasks if self.tasks else None


def load_average() -> float:
    return os.getloadavg()[0]
