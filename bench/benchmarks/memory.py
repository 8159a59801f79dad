"""Memory of the API over 10,000 creates, and of a worker over 1,000 tasks."""

from __future__ import annotations

import asyncio

from bench.api import Api
from bench.core import Benchmark, Figure, Report, at_most, format_number
from bench.creates import clear_queues, create_task_target, drain_queues, load, start_load
from bench.processes import Agent
from bench.stack import Context, Stack, stack
from bench.workers import Memory, Progress, start_worker, tree_memory

CREATES = 10_000
SAMPLE_EVERY = 1_000
# The creates before this are warm-up: pools filling, statements being prepared.
WARM_CREATES = 1_000
GROWTH_TARGET_PERCENT = 5.0
CREATE_CLIENTS = 32
WORKER_TASKS = 1_000
WORKER_SAMPLE_EVERY = 500
WORKER_CLIENTS = 8
WORKER_SETTINGS = {"AITASKS_DEMO_DURATION_SECONDS": "0"}
BATCH_TIMEOUT_SECONDS = 60.0
# Celery says it is ready before its beat process has started.
WORKER_SETTLE_SECONDS = 2.0
# Memory is read this long after the load stops, once freed objects are gone.
SETTLE_SECONDS = 0.5
MIB = 1024 * 1024

METHOD = f"""\
The API (`aitasks api`, one process) gets {CREATES:,} createTask requests from
{CREATE_CLIENTS} closed-loop clients (the `create` benchmark's load generator), in batches
of {SAMPLE_EVERY:,}; its resident memory (RSS) is read before the first and
{SETTLE_SECONDS:g} s after each batch. The first {WARM_CREATES:,} are warm-up (pools fill,
statements are prepared and cached); growth is counted from there to the end. No worker
runs meanwhile; the Celery messages are deleted after each batch. Then a worker as
`aitasks worker` starts it (default concurrency, the demo model answering at once) runs
{WORKER_TASKS:,} tasks created through the API, {WORKER_SAMPLE_EVERY} at a time, and its
memory is read {WORKER_SETTLE_SECONDS:g} s after it is ready and after each batch: RSS
summed over the main process, its beat process and its pool processes (one per core),
which counts the pages they share after the fork once per process, and PSS, which splits
shared pages between them."""


async def _api_samples(bench: Stack, api: Api, agent: Agent) -> list[int]:
    """RSS before any create, then after every SAMPLE_EVERY creates."""
    target = create_task_target(api)
    await asyncio.sleep(SETTLE_SECONDS)
    samples = [api.rss()]
    for _ in range(CREATES // SAMPLE_EVERY):
        window = await load(agent, target, CREATE_CLIENTS, 0, BATCH_TIMEOUT_SECONDS, SAMPLE_EVERY)
        if window.errors or window.requests != SAMPLE_EVERY:
            raise RuntimeError(f"createTask failed: {window.error_samples}")
        await drain_queues(bench.backing.redis_url, target.queue_keys)
        await asyncio.sleep(SETTLE_SECONDS)
        samples.append(api.rss())
    return samples


async def _worker_samples(bench: Stack, api: Api, agent: Agent) -> list[Memory]:
    """The worker's memory when ready, then after every WORKER_SAMPLE_EVERY tasks."""
    worker = await start_worker(bench, "worker", "bench.worker_server", **WORKER_SETTINGS)
    progress = Progress(bench.database_url)
    try:
        await asyncio.sleep(WORKER_SETTLE_SECONDS)
        samples = [tree_memory(worker.pid)]
        for _ in range(WORKER_TASKS // WORKER_SAMPLE_EVERY):
            since = await progress.now()
            target = create_task_target(api)
            window = await load(
                agent, target, WORKER_CLIENTS, 0, BATCH_TIMEOUT_SECONDS, WORKER_SAMPLE_EVERY
            )
            if window.errors or window.requests != WORKER_SAMPLE_EVERY:
                raise RuntimeError(f"createTask failed: {window.error_samples}")
            await asyncio.wait_for(
                progress.wait_finished(since, WORKER_SAMPLE_EVERY), BATCH_TIMEOUT_SECONDS
            )
            await asyncio.sleep(SETTLE_SECONDS)
            samples.append(tree_memory(worker.pid))
        return samples
    finally:
        await progress.close()
        await bench.stop_process(worker)


def _mib(value: float) -> float:
    return value / MIB


def _figures(api: list[int], worker: list[Memory]) -> list[Figure]:
    warm = api[WARM_CREATES // SAMPLE_EVERY]
    growth = 100 * (api[-1] - warm) / warm
    most = 100 * (max(api[WARM_CREATES // SAMPLE_EVERY :]) - warm) / warm
    return [
        Figure("API RSS idle", _mib(api[0]), "MiB"),
        Figure(f"API RSS after {CREATES:,} creates", _mib(api[-1]), "MiB"),
        at_most(
            f"API RSS growth from {WARM_CREATES:,} to {CREATES:,} creates",
            growth,
            "%",
            GROWTH_TARGET_PERCENT,
            f"at most {format_number(most)} % on the way",
        ),
        Figure(f"worker RSS idle, {worker[0].processes} processes", _mib(worker[0].rss), "MiB"),
        Figure(f"worker RSS after {WORKER_TASKS:,} tasks", _mib(worker[-1].rss), "MiB"),
        Figure(f"worker PSS after {WORKER_TASKS:,} tasks", _mib(worker[-1].pss), "MiB"),
    ]


def _details(api: list[int], worker: list[Memory]) -> list[str]:
    api_rows = [
        f"| {number * SAMPLE_EVERY:,} | {format_number(_mib(rss))} |"
        for number, rss in enumerate(api)
    ]
    worker_rows = [
        f"| {number * WORKER_SAMPLE_EVERY:,} | {memory.processes} | "
        f"{format_number(_mib(memory.rss))} | {format_number(_mib(memory.pss))} |"
        for number, memory in enumerate(worker)
    ]
    return [
        "| creates | API RSS MiB |",
        "| --- | --- |",
        *api_rows,
        "",
        "| tasks run | worker processes | RSS MiB (summed) | PSS MiB |",
        "| --- | --- | --- | --- |",
        *worker_rows,
        "",
    ]


async def run(context: Context) -> Report:
    async with stack(context, "memory") as bench:
        await clear_queues(bench.backing.redis_url)
        api = await bench.start_api()
        agent = await start_load(bench)
        api_samples = await _api_samples(bench, api, agent)
        worker_samples = await _worker_samples(bench, api, agent)
    return Report(
        figures=_figures(api_samples, worker_samples),
        details=_details(api_samples, worker_samples),
    )


BENCHMARK = Benchmark(
    name="memory",
    title="Memory: the API over 10,000 creates, a worker over 1,000 tasks",
    method=METHOD,
    time_limit_seconds=150.0,
    run=run,
)
