"""Tasks per second from createTask to COMPLETED, beside Celery's own no-op ceiling."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from bench.core import Benchmark, Figure, Report, at_least, format_number, median, spread
from bench.creates import (
    PRODUCT_QUEUE_KEYS,
    Target,
    clear_queues,
    create_task_target,
    load,
    start_load,
)
from bench.noop_worker import create_noop_app, send_noops
from bench.processes import Agent
from bench.redisstats import command_calls
from bench.stack import Context, Stack, stack
from bench.workers import Progress, machine_busy_seconds, start_worker, tree_cpu_seconds
from persistence.settings import Settings

TASKS = 500
NOOPS = 2000
ROUNDS = 5
CREATE_CLIENTS = 8
# The demo model answers at once: what is left is the pipeline itself.
WORKER_SETTINGS = {"AITASKS_DEMO_DURATION_SECONDS": "0"}
TARGET_RATIO = 0.5
RATIO = "\N{MULTIPLICATION SIGN} no-op drain"
DRAIN_POLL_SECONDS = 0.01
ROUND_TIMEOUT_SECONDS = 60.0
COMMAND_ROWS = 10
# Kombu's Redis transport keeps a delivered, unacknowledged message in this hash.
UNACKED_KEY = "unacked"

METHOD = f"""\
**Pipeline**: the API (`aitasks api`) and one worker as `aitasks worker` starts it
(default concurrency: one process per core; beat on), with the demo model answering at
once (AITASKS_DEMO_DURATION_SECONDS=0). Once the worker is ready, {TASKS} tasks are
created through the API by {CREATE_CLIENTS} closed-loop HTTP clients (the `create`
benchmark's load generator); the rate is {TASKS} over the time from the first task's
`created_at` to the last one's `finished_at`, read from PostgreSQL, with every task
COMPLETED. **No-op drain**: a bench-only Celery app (`bench/noop_worker.py`) made by the
product's `create_celery_app`, so with the same broker settings, with one task that does
nothing, on the same queue and priority as createTask's messages; {NOOPS:,} of its
messages are queued with no worker running, then a worker with the same command line
(queues, options, default concurrency; no beat) is started, and the rate is {NOOPS:,}
over the time from the first message taken (Redis lists plus kombu's unacked hash, polled
every {DRAIN_POLL_SECONDS * 1000:g} ms) to the last one acknowledged. Each is done
{ROUNDS} times, alternating, each with a worker of its own; figures are medians. Machine
CPU is the time all cores were busy (psutil) over a round, pipeline or drain, per task:
the worker, the API, PostgreSQL, Redis, the load generator, and whatever else runs on
the machine meanwhile."""


@dataclass(frozen=True)
class Pipeline:
    seconds: float
    worker_seconds: float
    changes: float
    # Redis commands run meanwhile, per task (the API's included).
    commands: dict[str, float]
    worker_cpu_ms: float
    # Every process on the machine, per task: the API, PostgreSQL, Redis, the load.
    machine_cpu_ms: float

    @property
    def rate(self) -> float:
        return TASKS / self.seconds

    @property
    def worker_rate(self) -> float:
        return TASKS / self.worker_seconds


async def _pipeline(bench: Stack, progress: Progress, agent: Agent, target: Target) -> Pipeline:
    """A fresh worker; TASKS tasks created through the API; until all are COMPLETED."""
    worker = await start_worker(bench, "worker", "bench.worker_server", **WORKER_SETTINGS)
    # With --profile: every process of the worker, its pool included.
    profiler = await bench.profile_process(
        "worker", worker.pid, "--subprocesses", "--full-filenames"
    )
    try:
        since = await progress.now()
        calls = await command_calls(bench.backing.redis_url)
        cpu, busy = tree_cpu_seconds(worker.pid), machine_busy_seconds()
        window = await load(agent, target, CREATE_CLIENTS, 0, ROUND_TIMEOUT_SECONDS, TASKS)
        if window.errors or window.requests != TASKS:
            raise RuntimeError(f"createTask failed: {window.error_samples}")
        finished = await asyncio.wait_for(
            progress.wait_finished(since, TASKS), ROUND_TIMEOUT_SECONDS
        )
        cpu_ms = (tree_cpu_seconds(worker.pid) - cpu) * 1000 / TASKS
        machine_ms = (machine_busy_seconds() - busy) * 1000 / TASKS
        calls = await command_calls(bench.backing.redis_url) - calls
        commands = {name: count / TASKS for name, count in calls.items()}
        return Pipeline(
            finished.seconds,
            finished.worker_seconds,
            finished.changes,
            commands,
            cpu_ms,
            machine_ms,
        )
    finally:
        if profiler is not None:
            await bench.stop_profiler(profiler)
        await bench.stop_process(worker)


async def _remaining(redis: Redis) -> int:
    async with redis.pipeline(transaction=False) as pipeline:
        for key in PRODUCT_QUEUE_KEYS:
            pipeline.llen(key)
        pipeline.hlen(UNACKED_KEY)
        return sum(int(length) for length in await pipeline.execute())


@dataclass(frozen=True)
class Drain:
    seconds: float
    # Redis commands run from queueing the first message to the last ack, per task.
    commands: dict[str, float]
    # From the first message taken to the last ack.
    worker_cpu_ms: float
    machine_cpu_ms: float

    @property
    def rate(self) -> float:
        return NOOPS / self.seconds


async def _drain(bench: Stack) -> Drain:
    """A fresh no-op worker, from its first message to its last ack."""
    settings = Settings(database_url=bench.database_url, redis_url=bench.backing.redis_url)
    calls = await command_calls(bench.backing.redis_url)
    app = create_noop_app(settings)
    try:
        await asyncio.to_thread(send_noops, app, NOOPS)
    finally:
        app.close()
    redis = Redis.from_url(bench.backing.redis_url)
    worker = await bench.start_process(
        "noop-worker", ["-m", "bench.noop_worker"], bench.env(**WORKER_SETTINGS)
    )
    try:
        if await _remaining(redis) != NOOPS:
            raise RuntimeError("the no-op messages are not all in Redis")
        first, polls, cpu, busy = None, 1, 0.0, 0.0
        deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
        while (remaining := await _remaining(redis)) > 0:
            polls += 1
            if first is None and remaining < NOOPS:
                first, cpu = time.monotonic(), tree_cpu_seconds(worker.pid)
                busy = machine_busy_seconds()
            if time.monotonic() > deadline or worker.process.returncode is not None:
                raise worker.failure(f"left {remaining} of {NOOPS} no-op tasks")
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        assert first is not None
        seconds = time.monotonic() - first
        cpu_ms = (tree_cpu_seconds(worker.pid) - cpu) * 1000 / NOOPS
        machine_ms = (machine_busy_seconds() - busy) * 1000 / NOOPS
        calls = await command_calls(bench.backing.redis_url) - calls
        # Not the worker's: this loop's own reads (the one after the last included).
        calls.subtract({"llen": (polls + 1) * len(PRODUCT_QUEUE_KEYS), "hlen": polls + 1})
        commands = {name: count / NOOPS for name, count in calls.items()}
        return Drain(seconds, commands, cpu_ms, machine_ms)
    finally:
        await bench.stop_process(worker)
        await redis.aclose()


def _figures(pipelines: list[Pipeline], drains: list[Drain]) -> list[Figure]:
    rates = [p.rate for p in pipelines]
    worker_rates = [p.worker_rate for p in pipelines]
    noop_rates = [d.rate for d in drains]
    ratios = [rate / noop for rate, noop in zip(rates, noop_rates, strict=True)]
    unit = "tasks/s"
    return [
        Figure("createTask → COMPLETED", median(rates), unit, spread=spread(rates, unit)),
        Figure(
            "first claim → last COMPLETED (the worker alone)",
            median(worker_rates),
            unit,
            spread=spread(worker_rates, unit),
        ),
        Figure(
            "no-op Celery tasks drained", median(noop_rates), unit, spread=spread(noop_rates, unit)
        ),
        at_least(
            "pipeline ÷ no-op drain", median(ratios), RATIO, TARGET_RATIO, spread(ratios, RATIO)
        ),
        Figure(
            "changes per pipeline task (its final sequence)",
            median([p.changes for p in pipelines]),
            "",
        ),
        Figure(
            "Redis commands per pipeline task",
            median([sum(p.commands.values()) for p in pipelines]),
            "",
        ),
        Figure(
            "Redis commands per no-op task", median([sum(d.commands.values()) for d in drains]), ""
        ),
        Figure(
            "worker CPU per pipeline task (every process)",
            median([p.worker_cpu_ms for p in pipelines]),
            "ms",
        ),
        Figure("worker CPU per no-op task", median([d.worker_cpu_ms for d in drains]), "ms"),
        Figure(
            "machine CPU per pipeline task (every process)",
            median([p.machine_cpu_ms for p in pipelines]),
            "ms",
        ),
        Figure(
            "machine CPU per no-op task (every process)",
            median([d.machine_cpu_ms for d in drains]),
            "ms",
        ),
    ]


def _command_rows(pipeline: Pipeline, drain: Drain) -> list[str]:
    names = sorted(
        set(pipeline.commands) | set(drain.commands),
        key=lambda name: -(pipeline.commands.get(name, 0) + drain.commands.get(name, 0)),
    )
    return [
        f"| {name.upper()} | {format_number(pipeline.commands.get(name, 0))} "
        f"| {format_number(drain.commands.get(name, 0))} |"
        for name in names[:COMMAND_ROWS]
    ]


def _details(pipelines: list[Pipeline], drains: list[Drain]) -> list[str]:
    rows = [
        f"| {number + 1} | {format_number(p.rate)} | {format_number(p.worker_rate)} "
        f"| {format_number(d.rate)} | {format_number(p.worker_cpu_ms)} "
        f"| {format_number(d.worker_cpu_ms)} | {format_number(p.machine_cpu_ms)} "
        f"| {format_number(d.machine_cpu_ms)} |"
        for number, (p, d) in enumerate(zip(pipelines, drains, strict=True))
    ]
    return [
        "| round | createTask → COMPLETED, tasks/s | first claim → last COMPLETED, tasks/s "
        "| no-op drain, tasks/s | worker CPU ms per pipeline task | worker CPU ms per no-op "
        "task "
        "| machine CPU ms per pipeline task | machine CPU ms per no-op task |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Redis commands per task in the last round (`INFO commandstats`; the pipeline's "
        "include the API's for the create):",
        "",
        "| command | pipeline task | no-op task |",
        "| --- | --- | --- |",
        *_command_rows(pipelines[-1], drains[-1]),
        "",
    ]


async def run(context: Context) -> Report:
    async with stack(context, "pipeline") as bench:
        await clear_queues(bench.backing.redis_url)
        api = await bench.start_api()
        agent = await start_load(bench)
        progress = Progress(bench.database_url)
        pipelines, drains = [], []
        try:
            for _ in range(ROUNDS):
                pipelines.append(await _pipeline(bench, progress, agent, create_task_target(api)))
                drains.append(await _drain(bench))
        finally:
            await progress.close()
    return Report(figures=_figures(pipelines, drains), details=_details(pipelines, drains))


BENCHMARK = Benchmark(
    name="pipeline",
    title="Pipeline: createTask to COMPLETED, beside Celery's no-op drain",
    method=METHOD,
    time_limit_seconds=240.0,
    run=run,
)
