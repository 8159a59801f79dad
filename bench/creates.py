"""Creating tasks under load, for the create-path benchmarks: the `createTask` request a
client sends, the floor (`bench.floor`) beside it, and one loaded window measured.

The load comes from `bench.agents.http_load`, in a process of its own. No worker runs
while creates are measured: the Celery messages pile up in Redis, and `drain_queues`
counts them (one per create, or something was lost) and deletes them between windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import psutil
from kombu.transport.redis import Channel as RedisChannel
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.api import Api
from bench.core import percentile
from bench.floor import QUEUE_KEY
from bench.floor_server import FLOOR_MESSAGE_BYTES_VARIABLE
from bench.processes import Agent
from bench.stack import Stack
from persistence.database import create_engine
from tasks.celery_app import PRIORITY_STEPS
from tasks.kinds.text import KIND as TEXT_KIND

# The README's createTask, as a client sends it: the operation with its variables.
CREATE_TASK = (
    "mutation CreateTask($input: CreateTaskInput!) { createTask(input: $input) { __typename "
    "... on Task { id status model sequence createdAt } "
    "... on ValidationError { field message } } }"
)
PROMPT = "Write a haiku about queues"
# Kombu keeps a list per priority step: the queue's name, then name + separator + step.
PRODUCT_QUEUE_KEYS = tuple(
    TEXT_KIND.queue + (f"{RedisChannel.sep}{step}" if step else "") for step in PRIORITY_STEPS
)
ANSWER_TIMEOUT_SECONDS = 30.0
JSON_HEADERS = {"Content-Type": "application/json"}
SESSION_COUNTER_NAME = "aitasks-bench-sessions"
SESSIONS = text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")


@dataclass(frozen=True)
class Target:
    """What the load generator sends to one server, and how it knows a create worked."""

    label: str
    server: Api
    path: str
    body: str
    expect: str
    queue_keys: tuple[str, ...]


def create_task_target(api: Api) -> Target:
    body = json.dumps({"query": CREATE_TASK, "variables": {"input": {"prompt": PROMPT}}})
    return Target("createTask", api, "/graphql", body, '"__typename":"Task"', PRODUCT_QUEUE_KEYS)


def floor_target(floor: Api) -> Target:
    body = json.dumps({"prompt": PROMPT})
    return Target("floor", floor, "/create", body, '"status":"PENDING"', (QUEUE_KEY,))


async def clear_queues(redis_url: str) -> None:
    """Delete the messages earlier benchmarks left on the queues: no worker started here
    is to run them, and they must not be counted as this benchmark's."""
    await drain_queues(redis_url, (*PRODUCT_QUEUE_KEYS, QUEUE_KEY))


async def celery_message_bytes(api: Api, redis_url: str) -> int:
    """The length of the Celery message one createTask sends, read back from Redis."""
    await clear_queues(redis_url)
    target = create_task_target(api)
    async with httpx.AsyncClient(trust_env=False, timeout=ANSWER_TIMEOUT_SECONDS) as client:
        answer = await client.post(api.http_url, content=target.body, headers=JSON_HEADERS)
    if target.expect not in answer.text:
        raise RuntimeError(f"createTask failed: {answer.text}")
    redis = Redis.from_url(redis_url)
    try:
        messages = [m for key in PRODUCT_QUEUE_KEYS for m in await redis.lrange(key, 0, -1)]
        await redis.delete(*PRODUCT_QUEUE_KEYS)
    finally:
        await redis.aclose()
    if len(messages) != 1:
        raise RuntimeError(f"expected one Celery message in Redis, found {len(messages)}")
    return len(messages[0])


async def start_floor(bench: Stack, message_bytes: int) -> Api:
    settings = {FLOOR_MESSAGE_BYTES_VARIABLE: str(message_bytes)}
    return await bench.start_server("floor", "bench.floor_server", **settings)


async def start_load(bench: Stack) -> Agent:
    return await bench.agent("http-load", "bench.agents.http_load", {"host": "127.0.0.1"})


async def drain_queues(redis_url: str, keys: tuple[str, ...]) -> int:
    """How many messages wait in these lists; delete them."""
    redis = Redis.from_url(redis_url)
    try:
        async with redis.pipeline(transaction=True) as pipeline:
            for key in keys:
                pipeline.llen(key)
            pipeline.delete(*keys)
            lengths = await pipeline.execute()
    finally:
        await redis.aclose()
    return sum(int(length) for length in lengths[:-1])


@dataclass(frozen=True)
class Window:
    """One measured stretch of closed-loop load on one server."""

    clients: int
    seconds: float
    latencies_us: list[int]
    # Whole run, warm-up included.
    requests: int
    errors: int
    error_samples: list[str]
    server_cpu_seconds: float
    load_cpu_seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies_us) / self.seconds

    def latency_ms(self, percent: float) -> float:
        return percentile(self.latencies_us, percent) / 1000 if self.latencies_us else float("nan")

    @property
    def server_cpu_us(self) -> float:
        """The server's CPU time (every thread) per request."""
        return self.server_cpu_seconds * 1e6 / max(self.requests, 1)

    @property
    def load_cpu_us(self) -> float:
        return self.load_cpu_seconds * 1e6 / max(self.requests, 1)


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def load(
    agent: Agent,
    target: Target,
    clients: int,
    warmup_seconds: float,
    seconds: float,
    count: int | None = None,
) -> Window:
    """`clients` closed-loop clients on `target` for `warmup_seconds`, then `seconds`
    measured; or until they have sent `count` requests, if given."""
    server_before = target.server.cpu_seconds()
    load_before = _cpu_seconds(agent.child.pid)
    ran = await agent.request(
        "run",
        "ran",
        warmup_seconds + seconds + ANSWER_TIMEOUT_SECONDS + 30,
        port=target.server.port,
        path=target.path,
        body=target.body,
        expect=target.expect,
        clients=clients,
        warmup_seconds=warmup_seconds,
        seconds=seconds,
        count=count,
    )
    return Window(
        clients=clients,
        seconds=ran["seconds"],
        latencies_us=ran["latencies_us"],
        requests=ran["requests"],
        errors=ran["errors"],
        error_samples=ran["error_samples"],
        server_cpu_seconds=target.server.cpu_seconds() - server_before,
        load_cpu_seconds=_cpu_seconds(agent.child.pid) - load_before,
    )


class SessionCounter:
    """PostgreSQL connections opened to the benchmark's database so far (the `sessions`
    counter of `pg_stat_database`), read on one connection held open, so reading it
    opens none."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(database_url, SESSION_COUNTER_NAME)
        self._connection: AsyncConnection | None = None

    async def read(self) -> int:
        if self._connection is None:
            self._connection = await self._engine.connect()
        # A fresh transaction: statistics are a snapshot per transaction.
        await self._connection.rollback()
        return int((await self._connection.execute(SESSIONS)).scalar_one())

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        await self._engine.dispose()
