"""createTask against its floor: throughput and latency at 1, 8 and 32 clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.core import (
    Benchmark,
    Figure,
    Report,
    at_least,
    at_most,
    below,
    format_number,
    median,
    spread,
)
from bench.creates import (
    SessionCounter,
    Target,
    Window,
    celery_message_bytes,
    create_task_target,
    drain_queues,
    floor_target,
    load,
    start_floor,
    start_load,
)
from bench.processes import Agent
from bench.stack import Context, stack

CLIENTS = (1, 8, 32)
ROUNDS = 3
WARMUP_SECONDS = 1.0
MEASURE_SECONDS = 3.0
# Before the first round: every pool connection opened, every statement prepared.
PRIME_CLIENTS, PRIME_SECONDS = 32, 2.0
# From the issue.
THROUGHPUT_RATIO_TARGET, THROUGHPUT_TARGET_CLIENTS = 0.75, 32
P50_RATIO_TARGET, P99_TARGET_MS, LATENCY_TARGET_CLIENTS = 2.0, 10.0, 1
RATIO = "\N{MULTIPLICATION SIGN} floor"

METHOD = f"""\
Two servers on one fresh database, each a single uvicorn process started with the
options of `aitasks api`: the API itself, and **the floor** (`bench/floor.py`), a
FastAPI endpoint doing only what a create must: the INSERT of the same row into `tasks`
with the creation's `task_events` entry in the same statement, as
`creation.insert_task` writes them (a CTE: INSERT ... RETURNING, then INSERT ...
SELECT from it; one round trip, committed on its own, over asyncpg with a pool of the
engine's size), then one LPUSH to Redis of a message as long as the Celery message the
API sends (read back from Redis at the start). No GraphQL, ORM, Celery client or PUBLISH.
The load generator is a separate process (`bench/agents/http_load.py`): closed-loop
clients, each on one keep-alive HTTP/1.1 connection, on a bare asyncio protocol (uvloop):
it spends about 50 µs of CPU per request (in the table), where an httpx client spent
about 700 µs and, on these two cores, held the floor to 880 requests/s instead of
2,100 (tried while writing this, 8 clients). createTask is the README's mutation with
variables.
At {", ".join(map(str, CLIENTS))} clients, {ROUNDS} rounds; in each round both servers
get {WARMUP_SECONDS:g} s of unmeasured load then {MEASURE_SECONDS:g} s measured, one after
the other, the order alternating. Throughput counts requests that ended in the measured
seconds; latency is send to last byte of the answer. Figures are medians over rounds;
each ratio is the median of the rounds' createTask ÷ floor. No worker runs: the messages
stay in Redis, where each window's are counted (one per create) and deleted, so queue
length never grows. "PostgreSQL connections opened" is `pg_stat_database.sessions`."""


@dataclass(frozen=True)
class Served:
    """One server's measured window, and what its creates left behind."""

    window: Window
    connections_opened: int
    queued: int

    @property
    def connections_per_thousand(self) -> float:
        return 1000 * self.connections_opened / max(self.window.requests, 1)


@dataclass(frozen=True)
class Round:
    product: Served
    floor: Served


class Measurer:
    """Runs windows on both servers, counting connections opened and messages queued."""

    def __init__(self, agent: Agent, sessions: SessionCounter, redis_url: str) -> None:
        self.agent = agent
        self.sessions = sessions
        self.redis_url = redis_url

    async def window(self, target: Target, clients: int, seconds: float) -> Served:
        before = await self.sessions.read()
        window = await load(self.agent, target, clients, WARMUP_SECONDS, seconds)
        opened = await self.sessions.read() - before
        queued = await drain_queues(self.redis_url, target.queue_keys)
        if window.errors:
            raise RuntimeError(f"{target.label} failed: {window.error_samples}")
        return Served(window, opened, queued)

    async def round(self, product: Target, floor: Target, clients: int, number: int) -> Round:
        order = [floor, product] if number % 2 == 0 else [product, floor]
        served = {t.label: await self.window(t, clients, MEASURE_SECONDS) for t in order}
        return Round(served[product.label], served[floor.label])


def _clients(count: int) -> str:
    return f"{count} client" if count == 1 else f"{count} clients"


Measure = Callable[[Window], float]
MEASURES: list[tuple[str, str, Measure]] = [
    ("throughput", "requests/s", lambda window: window.throughput),
    ("p50 latency", "ms", lambda window: window.latency_ms(50)),
    ("p99 latency", "ms", lambda window: window.latency_ms(99)),
]


def _ratio_figure(name: str, clients: int, ratios: list[float]) -> Figure:
    measure = f"{_clients(clients)}: {name}, createTask ÷ floor"
    value, shown = median(ratios), spread(ratios, RATIO)
    if name == "throughput" and clients == THROUGHPUT_TARGET_CLIENTS:
        return at_least(measure, value, RATIO, THROUGHPUT_RATIO_TARGET, shown)
    if name == "p50 latency" and clients == LATENCY_TARGET_CLIENTS:
        return at_most(measure, value, RATIO, P50_RATIO_TARGET, shown)
    return Figure(measure, value, RATIO, spread=shown)


def _level_figures(clients: int, rounds: list[Round]) -> list[Figure]:
    figures = []
    for name, unit, of in MEASURES:
        products = [of(r.product.window) for r in rounds]
        floors = [of(r.floor.window) for r in rounds]
        measure = f"{_clients(clients)}: {name}, createTask"
        if name == "p99 latency" and clients == LATENCY_TARGET_CLIENTS:
            figures.append(
                below(measure, median(products), unit, P99_TARGET_MS, spread(products, unit))
            )
        else:
            figures.append(Figure(measure, median(products), unit, spread=spread(products, unit)))
        figures.append(
            Figure(
                f"{_clients(clients)}: {name}, floor",
                median(floors),
                unit,
                spread=spread(floors, unit),
            )
        )
        ratios = [of(r.product.window) / of(r.floor.window) for r in rounds]
        figures.append(_ratio_figure(name, clients, ratios))
    opened = [r.product.connections_per_thousand for r in rounds]
    measure = f"{_clients(clients)}: PostgreSQL connections opened per 1,000 createTask"
    figures.append(Figure(measure, median(opened), "", spread=spread(opened, "")))
    return figures


def _cost_figures(rounds: list[Round]) -> list[Figure]:
    """Per request, over every round of every level."""
    product_cpu = median([r.product.window.server_cpu_us for r in rounds])
    floor_cpu = median([r.floor.window.server_cpu_us for r in rounds])
    queued = sum(r.product.queued for r in rounds) / sum(r.product.window.requests for r in rounds)
    return [
        Figure("server CPU per request, createTask", product_cpu, "µs"),
        Figure("server CPU per request, floor", floor_cpu, "µs"),
        Figure("server CPU per request, createTask ÷ floor", product_cpu / floor_cpu, RATIO),
        Figure("Celery messages in Redis per createTask", queued, "", "1", round(queued, 6) == 1),
    ]


def _row(clients: int, number: int, label: str, served: Served) -> str:
    window = served.window
    cells = [
        str(clients),
        str(number + 1),
        label,
        format_number(window.throughput),
        format_number(window.latency_ms(50)),
        format_number(window.latency_ms(99)),
        format_number(max(window.latencies_us, default=0) / 1000),
        format_number(window.server_cpu_us),
        format_number(window.load_cpu_us),
        format_number(served.connections_per_thousand),
        f"{served.queued:,}/{window.requests:,}",
    ]
    return "| " + " | ".join(cells) + " |"


def _details(message_bytes: int, levels: dict[int, list[Round]]) -> list[str]:
    rows = [
        _row(clients, number, label, served)
        for clients, rounds in levels.items()
        for number, r in enumerate(rounds)
        for label, served in (("floor", r.floor), ("createTask", r.product))
    ]
    return [
        f"The Celery message of one createTask is {message_bytes:,} bytes; the floor pushes "
        "as many.",
        "",
        "| clients | round | server | requests/s | p50 ms | p99 ms | max ms | server CPU µs "
        "per request | load generator CPU µs per request | PostgreSQL connections opened "
        "per 1,000 requests | messages in Redis / requests (warm-up included) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


async def run(context: Context) -> Report:
    async with stack(context, "create") as bench:
        api = await bench.start_api()
        message_bytes = await celery_message_bytes(api, bench.backing.redis_url)
        floor = await start_floor(bench, message_bytes)
        product, floor_load = create_task_target(api), floor_target(floor)
        sessions = SessionCounter(bench.database_url)
        try:
            measurer = Measurer(await start_load(bench), sessions, bench.backing.redis_url)
            for target in (floor_load, product):
                await measurer.window(target, PRIME_CLIENTS, PRIME_SECONDS)
            levels = {
                clients: [
                    await measurer.round(product, floor_load, clients, number)
                    for number in range(ROUNDS)
                ]
                for clients in CLIENTS
            }
        finally:
            await sessions.close()
    every_round = [r for rounds in levels.values() for r in rounds]
    figures = [f for clients, rounds in levels.items() for f in _level_figures(clients, rounds)]
    return Report(
        figures=figures + _cost_figures(every_round),
        details=_details(message_bytes, levels),
    )


BENCHMARK = Benchmark(
    name="create",
    title="createTask against its floor: throughput and latency",
    method=METHOD,
    time_limit_seconds=180.0,
    run=run,
)
