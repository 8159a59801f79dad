"""Fan-out: one change of one task reaching a thousand subscribers of it."""

from __future__ import annotations

from bench.api import Api
from bench.core import Benchmark, Figure, Report, below, format_number, median, spread
from bench.deliveries import Deliveries, match
from bench.processes import Agent
from bench.stack import Context, stack

SUBSCRIBERS = 1000
TARGET_MS = 100.0
REPEATS = 7
CONNECT_CONCURRENCY = 100
SETUP_SECONDS = 90.0
DRAIN_SECONDS = 10.0

METHOD = f"""\
{SUBSCRIBERS:,} subscribers, one WebSocket each, follow the same task on one API process.
The writer process (as in `latency`) claims the task, then makes one change at a time; for
each change every subscriber's receipt time is compared with the change's commit time.
The next change is written once all {SUBSCRIBERS:,} have it (or {DRAIN_SECONDS:g} s
passed). {REPEATS} changes; figures are medians over them. "API CPU" is the API process's
CPU time for the change divided by the updates it sent."""


def _row(deliveries: Deliveries, api_cpu_us: float) -> str:
    delays = sorted(deliveries.delays_ms)
    first, middle, last = (delays[0], median(delays), delays[-1]) if delays else (0, 0, 0)
    cells = [len(delays), deliveries.lost, first, middle, last, api_cpu_us / max(1, len(delays))]
    return "| " + " | ".join(format_number(value) for value in cells) + " |"


async def measure_change(api: Api, writer: Agent, followers: Agent) -> tuple[Deliveries, float]:
    """One change made and timed to every follower; also the API's CPU it cost (µs)."""
    cpu_before = api.cpu_seconds()
    ran = await writer.request("run", "ran", 60, rate=1.0, count=1)
    got = await followers.request(
        "collect", "receipts", DRAIN_SECONDS + 30, expect=SUBSCRIBERS, wait_seconds=DRAIN_SECONDS
    )
    cpu_us = (api.cpu_seconds() - cpu_before) * 1e6
    deliveries = match(
        ran["changes"], got["receipts"], task_of=lambda index: 0, subscribers_per_task=SUBSCRIBERS
    )
    return deliveries, cpu_us


async def run(context: Context) -> Report:
    async with stack(context, "fanout") as bench:
        api = await bench.start_api()
        writer = await bench.writer()
        (task_id,) = await api.create_tasks(1)
        params = {
            "url": api.ws_url,
            "task_ids": [task_id] * SUBSCRIBERS,
            "per_connection": 1,
            "concurrency": CONNECT_CONCURRENCY,
            "setup_seconds": SETUP_SECONDS,
        }
        followers = await bench.agent("subscribers", "bench.agents.subscribers", params)
        ready = await followers.expect("ready", SETUP_SECONDS + 30)
        if ready["served"] != SUBSCRIBERS:
            raise RuntimeError(f"only {ready['served']} of {SUBSCRIBERS} subscribed: {ready}")
        await writer.request("claim", "claimed", 60, task_ids=[task_id])
        await followers.request(
            "collect", "receipts", 60, expect=SUBSCRIBERS, wait_seconds=DRAIN_SECONDS
        )
        results = [await measure_change(api, writer, followers) for _ in range(REPEATS)]
        await followers.request("close", "closed", 60)
    lasts = [max(deliveries.delays_ms, default=float("inf")) for deliveries, _ in results]
    middles = [median(deliveries.delays_ms) for deliveries, _ in results if deliveries.delays_ms]
    lost = sum(deliveries.lost for deliveries, _ in results)
    label = f"{SUBSCRIBERS:,} subscribers of one task"
    return Report(
        figures=[
            below(
                f"{label}: last receipt after commit",
                median(lasts),
                "ms",
                TARGET_MS,
                spread(lasts, "ms"),
            ),
            below(
                f"{label}: median receipt after commit",
                median(middles),
                "ms",
                TARGET_MS,
                spread(middles, "ms"),
            ),
            Figure(f"{label}: updates not received", lost, "", "0", lost == 0),
        ],
        details=[
            "| received | lost | first ms | median ms | last ms | API CPU µs per update |",
            "| --- | --- | --- | --- | --- | --- |",
            *(_row(deliveries, cpu_us) for deliveries, cpu_us in results),
            "",
        ],
    )


BENCHMARK = Benchmark(
    name="fanout",
    title="Fan-out of one change to 1,000 subscribers",
    method=METHOD,
    time_limit_seconds=120.0,
    run=run,
)
