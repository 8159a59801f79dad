"""Latency from a change's commit to a subscriber's receipt."""

from __future__ import annotations

from dataclasses import dataclass

from bench.api import Api
from bench.core import (
    Benchmark,
    Figure,
    Report,
    below,
    format_number,
    median,
    percentile,
    spread,
)
from bench.deliveries import Deliveries, match, publish_ms
from bench.processes import Agent
from bench.stack import Context, Stack, stack

TARGET_MS = 10.0
REPEATS = 3
# (a): a streaming task writes at most every 50 ms (AITASKS_STREAM_FLUSH_SECONDS).
ONE_RATE, ONE_SECONDS = 20.0, 5.0
# (b): from the issue.
MANY, MANY_RATE, MANY_SECONDS = 1000, 200.0, 6.0
# Sockets being opened at once while subscribers connect.
CONNECT_CONCURRENCY = 100
SETUP_SECONDS = 90.0
# Receipts that have not arrived this long after the last change are lost.
DRAIN_SECONDS = 10.0

METHOD = f"""\
A separate writer process plays the worker: it claims each task, then writes changes with
`task_writes.record_output` on a pooled connection and publishes each after commit, as
`WorkerRuntime.write` does. It takes the wall-clock time right after the commit and
reports it with the change's `sequence`; the subscriber process takes the time each
`next` message arrives. Latency is receipt minus commit for every change (same machine,
same clock), so it covers the PUBLISH, Redis, the API's hub, Strawberry and the WebSocket.
Changes are written on an open-loop schedule (a late write does not delay the next).
Subscribers use the README's `taskStatus` selection over graphql-transport-ws, one
WebSocket each. (a) one subscriber, one task, {ONE_RATE:g} changes/s (a streaming task's
most); (b) {MANY:,} subscribers on one API process, each following its own task, while
{MANY_RATE:g} changes/s are committed round robin over the {MANY:,} tasks. Each is
{REPEATS} windows of {ONE_SECONDS:g} s / {MANY_SECONDS:g} s; figures are the median of
the windows' percentiles. "API CPU" is the API process's user+system CPU time during the
windows divided by the updates it delivered."""


@dataclass(frozen=True)
class Window:
    deliveries: Deliveries
    achieved_rate: float
    publish_ms: float | None
    api_cpu_us: float | None

    def row(self) -> str:
        p50, p99 = self.deliveries.percentile(50), self.deliveries.percentile(99)
        worst = max(self.deliveries.delays_ms, default=None)
        cells = [
            format_number(self.achieved_rate),
            format_number(len(self.deliveries.delays_ms)),
            format_number(self.deliveries.lost),
            format_number(self.deliveries.out_of_order),
            *(format_number(value) if value is not None else "n/a" for value in (p50, p99)),
            format_number(worst) if worst is not None else "n/a",
            format_number(self.publish_ms) if self.publish_ms is not None else "n/a",
            format_number(self.api_cpu_us) if self.api_cpu_us is not None else "n/a",
        ]
        return "| " + " | ".join(cells) + " |"


async def _follow(bench: Stack, api: Api, task_ids: list[str]) -> Agent:
    params = {
        "url": api.ws_url,
        "task_ids": task_ids,
        "per_connection": 1,
        "concurrency": CONNECT_CONCURRENCY,
        "setup_seconds": SETUP_SECONDS,
    }
    followers = await bench.agent(
        f"subscribers-{len(task_ids)}", "bench.agents.subscribers", params
    )
    ready = await followers.expect("ready", SETUP_SECONDS + 30)
    if ready["served"] != len(task_ids):
        raise RuntimeError(f"only {ready['served']} of {len(task_ids)} subscribed: {ready}")
    return followers


async def _window(api: Api, writer: Agent, followers: Agent, rate: float, seconds: float) -> Window:
    cpu_before = api.cpu_seconds()
    ran = await writer.request(
        "run", "ran", seconds * 3 + 60, rate=rate, count=round(rate * seconds)
    )
    changes = ran["changes"]
    got = await followers.request(
        "collect", "receipts", DRAIN_SECONDS + 30, expect=len(changes), wait_seconds=DRAIN_SECONDS
    )
    cpu_us = (api.cpu_seconds() - cpu_before) * 1e6
    deliveries = match(
        changes, got["receipts"], task_of=lambda index: index, subscribers_per_task=1
    )
    delivered = len(deliveries.delays_ms)
    return Window(
        deliveries,
        achieved_rate=len(changes) / ran["seconds"],
        publish_ms=publish_ms(changes),
        api_cpu_us=cpu_us / delivered if delivered else None,
    )


async def _measure(
    bench: Stack, api: Api, writer: Agent, subscribers: int, rate: float, seconds: float
) -> list[Window]:
    task_ids = await api.create_tasks(subscribers)
    followers = await _follow(bench, api, task_ids)
    await writer.request("claim", "claimed", 120, task_ids=task_ids)
    # The claims reach the subscribers too: take them out before measuring.
    await followers.request(
        "collect", "receipts", DRAIN_SECONDS + 30, expect=subscribers, wait_seconds=DRAIN_SECONDS
    )
    windows = [await _window(api, writer, followers, rate, seconds) for _ in range(REPEATS)]
    await followers.request("close", "closed", 60)
    await bench.stop_agent(followers)
    return windows


def _figures(label: str, windows: list[Window]) -> list[Figure]:
    figures = []
    for percent in (50, 99):
        values = [w.deliveries.percentile(percent) for w in windows]
        known = [value for value in values if value is not None]
        value = median(known) if known else None
        measure = f"{label}: p{percent} commit → receipt"
        figures.append(below(measure, value, "ms", TARGET_MS, spread(known, "ms")))
    pooled = [delay for w in windows for delay in w.deliveries.delays_ms]
    if pooled:
        # A pause that hits one window shows here, where the median of windows hides it.
        measure = f"{label}: p99 over all {len(windows)} windows' samples pooled"
        figures.append(below(measure, percentile(pooled, 99), "ms", TARGET_MS))
        figures.append(Figure(f"{label}: slowest receipt", max(pooled), "ms"))
    lost = sum(w.deliveries.lost for w in windows)
    figures.append(Figure(f"{label}: changes not received", lost, "", "0", lost == 0))
    return figures


def _details(label: str, windows: list[Window]) -> list[str]:
    return [
        f"{label}:",
        "",
        "| changes/s written | received | lost | out of order | p50 ms | p99 ms | max ms "
        "| commit → PUBLISH done, ms (median) | API CPU µs per update |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(window.row() for window in windows),
        "",
    ]


async def run(context: Context) -> Report:
    async with stack(context, "latency") as bench:
        api = await bench.start_api()
        writer = await bench.writer()
        one = await _measure(bench, api, writer, 1, ONE_RATE, ONE_SECONDS)
        many = await _measure(bench, api, writer, MANY, MANY_RATE, MANY_SECONDS)
    one_label = f"(a) 1 subscriber, {ONE_RATE:g} changes/s"
    many_label = f"(b) {MANY:,} subscribers, {MANY_RATE:g} changes/s"
    return Report(
        figures=_figures(one_label, one) + _figures(many_label, many),
        details=_details(one_label, one) + _details(many_label, many),
    )


BENCHMARK = Benchmark(
    name="latency",
    title="Commit-to-receipt latency of taskStatus",
    method=METHOD,
    time_limit_seconds=150.0,
    run=run,
)
