"""Server work per change a client sees: a `taskStatus` subscription vs polling `task`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench import dbstats
from bench.api import Api
from bench.core import Benchmark, Figure, Report, format_number
from bench.deliveries import MILLISECONDS, match
from bench.processes import Agent
from bench.stack import Context, Stack, stack

TASKS = 50
# Each task changes every 2 s (the demo model writes every 0.5 s, a slow model far less).
CHANGE_INTERVAL_SECONDS = 2.0
WINDOW_SECONDS = 15.0
POLL_INTERVAL_SECONDS = 1.0
# Pollers go on this long after the last change, so it can be seen.
POLL_TAIL_SECONDS = 2.0
CHANGES = round(TASKS / CHANGE_INTERVAL_SECONDS * WINDOW_SECONDS)
SETUP_SECONDS = 60.0
DRAIN_SECONDS = 10.0
PHASES = ("writer alone", "subscription", "polling")
# The API's request log (graphql_app/http/request_log.py), read as text lines.
REQUEST_LOGGER = "aitasks.requests"

METHOD = f"""\
{TASKS} tasks, each changed every {CHANGE_INTERVAL_SECONDS:g} s by the writer process (as in
`latency`: {CHANGES} changes over {WINDOW_SECONDS:g} s), followed by {TASKS} clients, in
three phases measured side by side in one run, each with fresh tasks and its own API
process: the writer alone (the baseline), {TASKS} `taskStatus` subscriptions (one WebSocket
each), and {TASKS} clients polling the `task` query every {POLL_INTERVAL_SECONDS:g} s (as
the README's polling fallback; HTTP keep-alive). Server work is counted on the server:
HTTP requests and WebSockets from the API's request log (a line per request, and per
WebSocket when it ends; uvicorn's access log is off); database work from
PostgreSQL's own statistics for the benchmark's database (`pg_stat_database`
transactions, `pg_stat_user_tables` sequential + index scans of `tasks` and
`task_events`, about one per statement). pg_stat_statements is not in the embedded
PostgreSQL. Each phase reads the counters with no other connection open before it
starts and after every process of it has exited (a backend publishes its counters on
exit), and the baseline phase's counts are subtracted, which leaves the API's work
(including the subscriptions' initial reads and periodic audits). Delay is, per change,
the time from its commit until a client first sees it (a `next` message; a poll answer
with that sequence or a later one). Per change = divided by the {CHANGES} changes."""


@dataclass(frozen=True)
class Seen:
    """What the clients of a phase saw of the writer's changes."""

    changes: list[list[float]]
    delays_ms: list[float]
    states: int


@dataclass(frozen=True)
class Phase:
    name: str
    counters: dbstats.Counters
    http_requests: int
    websocket_handshakes: int
    api_cpu_seconds: float
    seen: Seen


def _request_log_counts(api: Api | None) -> tuple[int, int]:
    """POSTs to /graphql and WebSockets on it, from the API's request log (text lines,
    graphql_app/http/request_log.py), read once the API has stopped and every socket has ended."""
    if api is None:
        return 0, 0
    log = api.child.log_path.read_text(errors="replace")
    lines = [line for line in log.splitlines() if f"{REQUEST_LOGGER}: " in line]
    posts = sum(f"{REQUEST_LOGGER}: POST /graphql " in line for line in lines)
    sockets = sum(f"{REQUEST_LOGGER}: WEBSOCKET /graphql " in line for line in lines)
    return posts, sockets


def _first_seen(
    changes: Sequence[Sequence[float]], answers: Sequence[Sequence[float]]
) -> tuple[list[float], int]:
    """For each change, the delay until a poll answer showed it (or a later sequence);
    and how many answers showed a state newer than the task's first answer had."""
    by_task: dict[int, list[tuple[float, int]]] = {}
    for task, sequence, received in answers:
        by_task.setdefault(int(task), []).append((received, int(sequence)))
    states = 0
    for polls in by_task.values():
        polls.sort()
        last = polls[0][1]
        for _, sequence in polls[1:]:
            states += sequence > last
            last = max(last, sequence)
    delays = []
    for task, sequence, committed, _ in changes:
        for received, seen in by_task.get(int(task), []):
            if received >= committed and seen >= sequence:
                delays.append((received - committed) * MILLISECONDS)
                break
    return delays, states


async def _write(writer: Agent) -> list[list[float]]:
    rate = CHANGES / WINDOW_SECONDS
    ran = await writer.request("run", "ran", WINDOW_SECONDS * 3 + 60, rate=rate, count=CHANGES)
    changes: list[list[float]] = ran["changes"]
    return changes


async def _writer_alone(bench: Stack, api: Api | None, task_ids: list[str], writer: Agent) -> Seen:
    await writer.request("claim", "claimed", 60, task_ids=task_ids)
    return Seen(await _write(writer), [], 0)


async def _subscription(bench: Stack, api: Api | None, task_ids: list[str], writer: Agent) -> Seen:
    assert api is not None
    params = {
        "url": api.ws_url,
        "task_ids": task_ids,
        "per_connection": 1,
        "concurrency": TASKS,
        "setup_seconds": SETUP_SECONDS,
    }
    followers = await bench.agent("subscribers", "bench.agents.subscribers", params)
    await followers.expect("ready", SETUP_SECONDS + 30)
    await writer.request("claim", "claimed", 60, task_ids=task_ids)
    await followers.request("collect", "receipts", 60, expect=TASKS, wait_seconds=DRAIN_SECONDS)
    changes = await _write(writer)
    got = await followers.request(
        "collect", "receipts", DRAIN_SECONDS + 30, expect=CHANGES, wait_seconds=DRAIN_SECONDS
    )
    await followers.request("close", "closed", 60)
    deliveries = match(changes, got["receipts"], lambda index: index, 1)
    return Seen(changes, deliveries.delays_ms, len(got["receipts"]))


async def _polling(bench: Stack, api: Api | None, task_ids: list[str], writer: Agent) -> Seen:
    assert api is not None
    params = {"url": api.http_url, "task_ids": task_ids, "interval": POLL_INTERVAL_SECONDS}
    pollers = await bench.agent("pollers", "bench.agents.pollers", params)
    await writer.request("claim", "claimed", 60, task_ids=task_ids)
    await pollers.send("run", seconds=WINDOW_SECONDS + POLL_TAIL_SECONDS)
    changes = await _write(writer)
    polled = await pollers.expect("polled", WINDOW_SECONDS + POLL_TAIL_SECONDS + 60)
    delays, states = _first_seen(changes, polled["answers"])
    return Seen(changes, delays, states)


CLIENTS = {"writer alone": _writer_alone, "subscription": _subscription, "polling": _polling}


async def _phase(bench: Stack, name: str, task_ids: list[str]) -> Phase:
    await dbstats.wait_quiet(bench.database_url)
    before = await dbstats.read(bench.database_url)
    api = (
        None
        if name == "writer alone"
        else await bench.start_api(f"api-{name}", AITASKS_LOG_FORMAT="text")
    )
    cpu_before = api.cpu_seconds() if api else 0.0
    writer = await bench.writer(f"writer-{name}")
    seen = await CLIENTS[name](bench, api, task_ids, writer)
    cpu = api.cpu_seconds() - cpu_before if api else 0.0
    await bench.close()  # every process of the phase: their counters are then published
    await dbstats.wait_quiet(bench.database_url)
    counters = await dbstats.read(bench.database_url) - before
    requests, handshakes = _request_log_counts(api)
    return Phase(name, counters, requests, handshakes, cpu, seen)


def _per_change(phase: Phase, baseline: Phase) -> dict[str, float]:
    work = phase.counters - baseline.counters
    changes = len(phase.seen.changes) or 1
    delays = phase.seen.delays_ms
    return {
        "http": (phase.http_requests + phase.websocket_handshakes) / changes,
        "transactions": work.transactions / changes,
        "scans": work.table_scans / changes,
        "rows": (work.rows_returned + work.rows_fetched) / changes,
        "cpu_us": phase.api_cpu_seconds * 1e6 / changes,
        "delay_ms": sum(delays) / len(delays) if delays else float("nan"),
        "seen": len(delays) / changes,
    }


def _row(phase: Phase, per: dict[str, float] | None) -> str:
    counters = phase.counters
    numbers: list[float] = [
        len(phase.seen.changes),
        len(phase.seen.delays_ms),
        phase.seen.states,
        phase.http_requests,
        phase.websocket_handshakes,
        counters.transactions,
        counters.table_scans,
        counters.rows_returned + counters.rows_fetched,
        phase.api_cpu_seconds,
    ]
    shown = [phase.name, *(format_number(value) for value in numbers)]
    if per is None:
        shown += ["", "", "", ""]
    else:
        shown += [format_number(per[key]) for key in ("transactions", "scans", "cpu_us")]
        shown.append(format_number(per["delay_ms"]))
    return "| " + " | ".join(shown) + " |"


def _figures(subscription: dict[str, float], polling: dict[str, float]) -> list[Figure]:
    figures = []
    for label, per in (("subscription", subscription), ("polling", polling)):
        figures += [
            Figure(
                f"{label}: HTTP requests (incl. WebSocket handshakes) per change", per["http"], ""
            ),
            Figure(f"{label}: database transactions per change", per["transactions"], ""),
            Figure(f"{label}: table scans (~statements) per change", per["scans"], ""),
            Figure(f"{label}: API CPU per change", per["cpu_us"], "µs"),
            Figure(f"{label}: mean delay until the client sees a change", per["delay_ms"], "ms"),
        ]
    for key, what in (
        ("transactions", "database transactions"),
        ("scans", "table scans"),
        ("cpu_us", "API CPU"),
        ("delay_ms", "delay"),
    ):
        ratio = polling[key] / subscription[key] if subscription[key] else float("inf")
        figures.append(Figure(f"polling / subscription: {what} per change", ratio, "x"))
    return figures


async def run(context: Context) -> Report:
    async with stack(context, "polling") as bench:
        maker = await bench.start_api("api-create")
        task_ids = await maker.create_tasks(TASKS * len(PHASES))
        await bench.stop_api(maker)
        phases = [
            await _phase(bench, name, task_ids[number * TASKS : (number + 1) * TASKS])
            for number, name in enumerate(PHASES)
        ]
    baseline, subscription, polling = phases
    per = {phase.name: _per_change(phase, baseline) for phase in (subscription, polling)}
    return Report(
        figures=_figures(per["subscription"], per["polling"]),
        details=[
            "| phase | changes | changes seen | states seen | HTTP POSTs | WebSocket handshakes "
            "| transactions | table scans | rows read | API CPU s | transactions per change "
            "(less baseline) | table scans per change (less baseline) | API CPU µs per change "
            "| mean delay ms |",
            "|" + " --- |" * 14,
            *(_row(phase, per.get(phase.name)) for phase in phases),
            "",
        ],
    )


BENCHMARK = Benchmark(
    name="polling",
    title="Server work per change seen: subscription vs polling",
    method=METHOD,
    time_limit_seconds=180.0,
    run=run,
)
