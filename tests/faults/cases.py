"""The fault cases. Each starts a fresh stack on the suite's servers, creates a backlog,
keeps clients creating tasks while the fault lasts, and measures once it has ended.

The waits here are the faults' own lengths (how long a server stays down), not a way to
synchronise with the product: what the product does is waited for in `measure`."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil

from tests.faults.harness import (
    CREATES_MAX,
    TASKS_BEFORE,
    TERMINAL,
    Answers,
    Bench,
    Clients,
    Outcome,
    create,
    measure,
    sequences,
    states,
)
from tests.faults.resuming import Heard, follow_while
from tests.fixtures.stack import Process, Stack, wait_until

# How long a stopped server stays down.
DOWN_SECONDS = 5.0
# How long the network to a server drops packets.
NETWORK_DROP_SECONDS = 10.0
# Clients keep creating this long after the fault ended.
AFTER_SECONDS = 2.0
# Clients creating the backlog at once, as a burst of users would.
BACKLOG_CLIENTS = 4
# The short version's backlog (in `make test`): tasks still queued and running when the
# fault hits, in a case that takes less time to drain.
SHORT_TASKS_BEFORE = 8


@dataclass
class Running:
    bench: Bench
    stack: Stack
    worker: Process
    api: Process


# A fault may report what subscribers heard during it.
Fault = Callable[[Running], Heard | None]


def _pool_pids(worker: Process) -> list[int]:
    return [child.pid for child in psutil.Process(worker.popen.pid).children()]


def _started(stack: Stack) -> bool:
    database_url: str = stack.direct_database_url  # type: ignore[attr-defined]
    found, _ = states(database_url)
    return "PROCESSING" in found.values()


def _start(stack: Stack) -> tuple[Process, Process]:
    """The worker and the API, started side by side: each takes seconds to import."""
    with ThreadPoolExecutor(2) as starting:
        worker = starting.submit(stack.start_worker)
        api = starting.submit(stack.start_api)
        return worker.result(), api.result()


def _create_backlog(stack: Stack, count: int) -> Answers:
    prompts = [f"before the fault #{number}" for number in range(count)]
    with ThreadPoolExecutor(BACKLOG_CLIENTS) as clients:
        responses = list(clients.map(lambda prompt: create(stack.graphql_url, prompt), prompts))
    before = Answers()
    for response in responses:
        before.record(response)
    return before


def run_case(
    bench: Bench,
    name: str,
    fault: Fault,
    *,
    persistent_redis: bool = False,
    tasks_before: int = TASKS_BEFORE,
) -> Outcome:
    stack = bench.new_stack(persistent_redis=persistent_redis)
    try:
        worker, api = _start(stack)
        before = _create_backlog(stack, tasks_before)
        wait_until(lambda: _started(stack), 30, "a task to be running")
        with Clients(stack, CREATES_MAX - tasks_before) as clients:
            heard = fault(Running(bench, stack, worker, api))
            fault_ended = time.monotonic()
            time.sleep(AFTER_SECONDS)
        clients.answers.task_ids += before.task_ids
        outcome = measure(name, stack, clients.answers, fault_ended)
        if heard is not None:
            heard.finals = sequences(stack.direct_database_url)  # type: ignore[attr-defined]
            found, _ = states(stack.direct_database_url)  # type: ignore[attr-defined]
            for task_id, why in heard.failed.items():
                print(
                    f"following {task_id} failed: {why}; the task is now "
                    f"{found.get(task_id)} at {heard.finals.get(task_id)}",
                    flush=True,
                )
            outcome.subscribers = heard.summary()
            outcome.subscriber_errors = heard.bad
        return outcome
    finally:
        bench.end_stack(stack)


def subscribers_resume(running: Running) -> Heard:
    """Subscribers drop their sockets mid-stream and resume with `after:`, for as long
    as a server stays down in the other cases."""
    database_url: str = running.stack.direct_database_url  # type: ignore[attr-defined]

    def running_tasks() -> list[str]:
        found, _ = states(database_url)
        return [task_id for task_id, status in found.items() if status not in TERMINAL]

    return asyncio.run(follow_while(running.stack, DOWN_SECONDS, running_tasks))


def redis_restart(running: Running) -> None:
    redis = running.bench.redis
    assert redis is not None
    redis.stop()
    time.sleep(DOWN_SECONDS)
    redis.start()


def postgres_restart(mode: str) -> Fault:
    def fault(running: Running) -> None:
        running.bench.postgres.stop(mode)
        time.sleep(DOWN_SECONDS)
        running.bench.postgres.start()

    return fault


def network_drop(to_redis: bool) -> Fault:
    def fault(running: Running) -> None:
        proxy = running.bench.redis_proxy if to_redis else running.bench.postgres_proxy
        assert proxy is not None
        proxy.hold()
        time.sleep(NETWORK_DROP_SECONDS)
        proxy.release()

    return fault


def kill_pool_processes(running: Running) -> None:
    for pid in _pool_pids(running.worker):
        os.kill(pid, signal.SIGKILL)


def kill_worker_main_process(running: Running) -> None:
    """The main process alone, as the OOM killer may pick it; a supervisor (compose,
    systemd) then starts a new worker."""
    os.kill(running.worker.popen.pid, signal.SIGKILL)
    running.worker.popen.wait()
    running.stack.start_worker()


def kill_api_during_burst(running: Running) -> None:
    running.api.kill()
    running.stack.api_url = ""
    running.stack.start_api()


CASES: dict[str, tuple[Fault, bool]] = {
    "Redis restarted, no persistence (queues lost)": (redis_restart, False),
    "Redis restarted, append-only file": (redis_restart, True),
    "PostgreSQL restarted, fast shutdown": (postgres_restart("fast"), False),
    "PostgreSQL restarted, immediate shutdown": (postgres_restart("immediate"), False),
    "network to PostgreSQL dropped 10 s": (network_drop(to_redis=False), False),
    "network to Redis dropped 10 s": (network_drop(to_redis=True), False),
    "worker's pool processes SIGKILLed": (kill_pool_processes, False),
    "worker's main process SIGKILLed": (kill_worker_main_process, False),
    "API SIGKILLed during a burst of creates": (kill_api_during_burst, False),
    "subscribers disconnected mid-stream, resumed with `after:`": (subscribers_resume, False),
}
# One case per dependency, for `make test`.
SHORT = [
    "Redis restarted, no persistence (queues lost)",
    "PostgreSQL restarted, fast shutdown",
    "worker's pool processes SIGKILLed",
]


def run(bench: Bench, name: str, tasks_before: int = TASKS_BEFORE) -> Outcome:
    fault, persistent = CASES[name]
    return run_case(bench, name, fault, persistent_redis=persistent, tasks_before=tasks_before)
