"""One API process against two (AITASKS_API_WORKERS=2): createTask throughput and the
fan-out of one change to many subscribers, side by side in one run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.api import Api
from bench.benchmarks import fanout
from bench.core import Benchmark, Figure, Report, format_number, median, spread
from bench.creates import (
    PRODUCT_QUEUE_KEYS,
    SessionCounter,
    Window,
    create_task_target,
    drain_queues,
    load,
    start_load,
)
from bench.deliveries import Deliveries
from bench.processes import Agent
from bench.stack import Context, Stack, stack

PROCESSES = (1, 2)
CLIENTS = 32
ROUNDS = 3
WARMUP_SECONDS = 1.0
MEASURE_SECONDS = 3.0
PRIME_SECONDS = 2.0
SUBSCRIBERS = fanout.SUBSCRIBERS
DRAIN_SECONDS = fanout.DRAIN_SECONDS
CHANGES = 5
CONNECT_CONCURRENCY = 100
SETUP_SECONDS = 90.0
RATIO = "\N{MULTIPLICATION SIGN} one process"

METHOD = f"""\
Two `aitasks api` servers on one fresh database and one Redis, started alike but for
AITASKS_API_WORKERS: 1 and 2 (uvicorn's supervisor, one port, each process with its own
pools and Redis subscription). **createTask**: {CLIENTS} closed-loop clients from the load
generator of `create` (`bench/agents/http_load.py`), {ROUNDS} rounds of
{WARMUP_SECONDS:g} s unmeasured then {MEASURE_SECONDS:g} s measured on each server, the
order alternating; no worker runs, the Celery messages are counted and deleted after each
window. **Fan-out**: {SUBSCRIBERS:,} subscribers (one WebSocket each, as in `fanout`)
follow one task on one server, spread over its processes by the kernel as they connect;
the one-process server goes first and is stopped before the two-process one's turn (with
both up, the pools filled PostgreSQL's 100 connections: "too many clients");
the writer makes {CHANGES} changes, one at a time, and each receipt is timed from the
change's commit. Figures are medians over rounds (createTask) or changes (fan-out). "API
CPU" counts every process of the server. The machine has 2 cores, shared with the load
generator, PostgreSQL and Redis (and, while this ran, with other work): a second API
process can add at most what the other programs leave of the second core, so the ratio
here is a floor for what a machine with spare cores gets."""


@dataclass(frozen=True)
class Fanout:
    deliveries: list[Deliveries]
    cpu_us_per_update: list[float]


def _servers(processes: int) -> str:
    return "1 process" if processes == 1 else f"{processes} processes"


async def _creates(
    bench: Stack, apis: dict[int, Api]
) -> tuple[dict[int, list[Window]], dict[int, list[int]]]:
    agent = await start_load(bench)
    targets = {count: create_task_target(api) for count, api in apis.items()}
    sessions = SessionCounter(bench.database_url)
    windows: dict[int, list[Window]] = {count: [] for count in apis}
    queued: dict[int, list[int]] = {count: [] for count in apis}
    try:
        for target in targets.values():
            await load(agent, target, CLIENTS, 0, PRIME_SECONDS)
            await drain_queues(bench.backing.redis_url, PRODUCT_QUEUE_KEYS)
        for number in range(ROUNDS):
            order = list(targets) if number % 2 == 0 else list(reversed(targets))
            for count in order:
                window = await load(agent, targets[count], CLIENTS, WARMUP_SECONDS, MEASURE_SECONDS)
                if window.errors:
                    raise RuntimeError(f"createTask failed: {window.error_samples}")
                windows[count].append(window)
                queued[count].append(
                    await drain_queues(bench.backing.redis_url, PRODUCT_QUEUE_KEYS)
                )
    finally:
        await sessions.close()
        await bench.stop_agent(agent)
    return windows, queued


async def _change(api: Api, writer: Agent, followers: Agent) -> tuple[Deliveries, float]:
    """As `fanout` times a change; the API's CPU per delivery."""
    deliveries, cpu_us = await fanout.measure_change(api, writer, followers)
    return deliveries, cpu_us / max(1, len(deliveries.delays_ms))


async def _fanout(bench: Stack, api: Api, writer: Agent) -> Fanout:
    (task_id,) = await api.create_tasks(1)
    params = {
        "url": api.ws_url,
        "task_ids": [task_id] * SUBSCRIBERS,
        "per_connection": 1,
        "concurrency": CONNECT_CONCURRENCY,
        "setup_seconds": SETUP_SECONDS,
    }
    followers = await bench.agent("subscribers", "bench.agents.subscribers", params)
    try:
        ready = await followers.expect("ready", SETUP_SECONDS + 30)
        if ready["served"] != SUBSCRIBERS:
            raise RuntimeError(f"only {ready['served']} of {SUBSCRIBERS} subscribed: {ready}")
        await writer.request("claim", "claimed", 60, task_ids=[task_id])
        await followers.request(
            "collect", "receipts", 60, expect=SUBSCRIBERS, wait_seconds=DRAIN_SECONDS
        )
        results = [await _change(api, writer, followers) for _ in range(CHANGES)]
        await followers.request("close", "closed", 60)
    finally:
        await bench.stop_agent(followers)
    return Fanout([d for d, _ in results], [cpu for _, cpu in results])


def _create_figures(windows: dict[int, list[Window]]) -> list[Figure]:
    figures = []
    for count, rounds in windows.items():
        rates = [window.throughput for window in rounds]
        p50s = [window.latency_ms(50) for window in rounds]
        label = f"createTask, {CLIENTS} clients, {_servers(count)}"
        figures.append(
            Figure(
                f"{label}: throughput",
                median(rates),
                "requests/s",
                spread=spread(rates, "requests/s"),
            )
        )
        figures.append(
            Figure(f"{label}: p50 latency", median(p50s), "ms", spread=spread(p50s, "ms"))
        )
    one, two = windows[1], windows[2]
    ratios = [b.throughput / a.throughput for a, b in zip(one, two, strict=True)]
    figures.append(
        Figure(
            "createTask throughput, 2 processes ÷ 1",
            median(ratios),
            RATIO,
            spread=spread(ratios, RATIO),
        )
    )
    return figures


def _fanout_figures(fanouts: dict[int, Fanout]) -> list[Figure]:
    figures = []
    for count, measured in fanouts.items():
        lasts = [max(d.delays_ms, default=float("inf")) for d in measured.deliveries]
        middles = [median(d.delays_ms) for d in measured.deliveries if d.delays_ms]
        lost = sum(d.lost for d in measured.deliveries)
        label = f"fan-out to {SUBSCRIBERS:,}, {_servers(count)}"
        figures.append(
            Figure(
                f"{label}: last receipt after commit",
                median(lasts),
                "ms",
                spread=spread(lasts, "ms"),
            )
        )
        figures.append(
            Figure(
                f"{label}: median receipt after commit",
                median(middles),
                "ms",
                spread=spread(middles, "ms"),
            )
        )
        figures.append(
            Figure(f"{label}: API CPU per update", median(measured.cpu_us_per_update), "µs")
        )
        figures.append(Figure(f"{label}: updates not received", lost, "", "0", lost == 0))
    return figures


def _details(windows: dict[int, list[Window]], queued: dict[int, list[int]]) -> list[str]:
    rows = [
        f"| {_servers(count)} | {number + 1} | {format_number(window.throughput)} | "
        f"{format_number(window.latency_ms(50))} | {format_number(window.latency_ms(99))} | "
        f"{format_number(window.server_cpu_us)} | {queued[count][number]:,}/{window.requests:,} |"
        for count, rounds in windows.items()
        for number, window in enumerate(rounds)
    ]
    return [
        "| API | round | requests/s | p50 ms | p99 ms | API CPU µs per request | "
        "messages in Redis / requests |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


async def run(context: Context) -> Report:
    async with stack(context, "scaling") as bench:
        apis = {
            count: await bench.start_api(f"api-{count}", AITASKS_API_WORKERS=str(count))
            for count in PROCESSES
        }
        windows, queued = await _creates(bench, apis)
        writer = await bench.writer()
        # One server at a time: PostgreSQL's 100 connections do not hold both servers'
        # pools full (60 per process, docs/scaling.md), which 1,000 subscribers joining
        # at once come near.
        fanouts = {}
        for count, api in apis.items():
            fanouts[count] = await _fanout(bench, api, writer)
            await bench.stop_api(api)
    return Report(
        figures=_create_figures(windows) + _fanout_figures(fanouts),
        details=_details(windows, queued),
    )


BENCHMARK = Benchmark(
    name="scaling",
    title="One API process and two, side by side",
    method=METHOD,
    time_limit_seconds=600.0,
    run=run,
)
