"""Ten thousand idle subscriptions on one API process: all served, and what they cost."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.api import Api
from bench.core import Benchmark, Figure, Report, below, format_number
from bench.deliveries import match
from bench.processes import Agent
from bench.stack import Context, Stack, stack
from tasks.events import channel_of

SUBSCRIPTIONS = 10_000
TARGET_KIB = 20.0
KIB = 1024
# Subscriptions per WebSocket: one each, as browsers do, then many on one socket, which
# graphql-transport-ws allows (each operation has its own id).
MODES = (1, 100)
# Subscriptions being set up at once, however many sockets that is.
IN_FLIGHT = 200
SETUP_SECONDS = 150.0
# Memory is read this long after the last subscription was served or closed.
SETTLE_SECONDS = 2.0
# Tasks changed once each while all subscriptions are open, to show they are live.
LIVE_CHANGES = 100
DRAIN_SECONDS = 20.0
API_NAME = "aitasks-api"
# The straw man: one redis-py PubSub per subscriber, on one client with its default pool.
STRAW_MAN_TRIES = 150
STRAW_MAN_CHANNEL = "aitasks:bench:straw-man"

METHOD = f"""\
{SUBSCRIPTIONS:,} tasks are made with `createTask` (by an API process used only for that),
then a fresh API process gets {SUBSCRIPTIONS:,} `taskStatus` subscriptions, one per task,
from one load-generator process, {IN_FLIGHT} being set up at a time. "Served" counts
subscriptions whose first update (the task as it is) arrived. The API's resident memory
(RSS, psutil) is read after one warm-up subscription and before the first, then
{SETTLE_SECONDS:g} s after the last was served; memory per subscription is the difference
divided by {SUBSCRIPTIONS:,}. Then the writer (as in `latency`) claims {LIVE_CHANGES} of the
tasks, and each claim must reach its subscriber: the subscriptions are live, not just
open. Redis `CLIENT LIST` and `PUBSUB NUMSUB` show the API's connections to Redis: one
subscription for the whole process. For contrast, the straightforward design, a redis-py
PubSub per subscriber on one client, is tried up to {STRAW_MAN_TRIES} subscribers: each
PubSub holds a connection, and the client's pool refuses the 101st (redis-py's default
`max_connections` is 100). Done twice, each
with a fresh API: one subscription per WebSocket, then 100 subscriptions per WebSocket.
From the two, per-socket and per-subscription costs are solved for: with n subscriptions
on k sockets, growth = k x socket + n x subscription."""


@dataclass(frozen=True)
class Mode:
    per_socket: int
    ready: dict[str, Any]
    rss_before: int
    rss_after: int
    rss_closed: int
    api_clients: int
    channel_subscribers: int
    live_received: int
    live_slowest_ms: float | None
    setup_cpu_seconds: float

    @property
    def growth(self) -> int:
        return self.rss_after - self.rss_before

    @property
    def per_subscription_kib(self) -> float:
        return self.growth / SUBSCRIPTIONS / KIB

    @property
    def label(self) -> str:
        if self.per_socket == 1:
            return "one subscription per WebSocket"
        return f"{self.per_socket} subscriptions per WebSocket"

    def row(self) -> str:
        mib = KIB * KIB
        cells = [
            self.label,
            format_number(self.ready["sockets"]),
            f"{self.ready['served']:,}",
            str(self.ready["errors"]),
            format_number(self.ready["seconds"]),
            format_number(self.setup_cpu_seconds * 1e6 / SUBSCRIPTIONS),
            format_number(self.rss_before / mib),
            format_number(self.rss_after / mib),
            format_number(self.per_subscription_kib),
            format_number(self.rss_closed / mib),
            str(self.api_clients),
            str(self.channel_subscribers),
            f"{self.live_received}/{LIVE_CHANGES}",
            format_number(self.live_slowest_ms) if self.live_slowest_ms is not None else "n/a",
        ]
        return "| " + " | ".join(cells) + " |"


async def _redis_view(redis_url: str) -> tuple[int, int]:
    """The API's connections to Redis, and the subscribers of the events channel."""
    redis = Redis.from_url(redis_url)
    try:
        clients = await redis.client_list()
        channels = await redis.pubsub_numsub(channel_of(redis))
    finally:
        await redis.aclose()
    api_clients = sum(1 for client in clients if client.get("name") == API_NAME)
    return api_clients, int(channels[0][1])


async def _pubsub_per_subscriber(redis_url: str) -> int:
    """How many subscribers the straightforward design serves: a PubSub each, sharing one
    redis-py client, until its connection pool refuses one."""
    redis = Redis.from_url(redis_url)
    pubsubs: list[PubSub] = []
    try:
        for _ in range(STRAW_MAN_TRIES):
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(STRAW_MAN_CHANNEL)
            except RedisConnectionError:
                await pubsub.aclose()
                break
            pubsubs.append(pubsub)
        return len(pubsubs)
    finally:
        for pubsub in pubsubs:
            await pubsub.aclose()
        await redis.aclose()


async def _subscribe(bench: Stack, api: Api, task_ids: list[str], per_socket: int) -> Agent:
    params = {
        "url": api.ws_url,
        "task_ids": task_ids,
        "per_connection": per_socket,
        "concurrency": max(1, IN_FLIGHT // per_socket),
        "setup_seconds": SETUP_SECONDS,
    }
    return await bench.agent(f"subscribers-{per_socket}", "bench.agents.subscribers", params)


async def _warm_up(bench: Stack, api: Api, task_id: str) -> None:
    """One subscription opened and closed, so the API has run that code once."""
    followers = await _subscribe(bench, api, [task_id], 1)
    await followers.expect("ready", SETUP_SECONDS)
    await followers.request("close", "closed", 30)
    await bench.stop_agent(followers)


async def _live_check(
    writer: Agent, followers: Agent, task_ids: list[str], offset: int
) -> tuple[int, float | None]:
    changed = task_ids[offset : offset + LIVE_CHANGES]
    claimed = await writer.request("claim", "claimed", 120, task_ids=changed)
    got = await followers.request(
        "collect", "receipts", DRAIN_SECONDS + 30, expect=LIVE_CHANGES, wait_seconds=DRAIN_SECONDS
    )
    deliveries = match(claimed["changes"], got["receipts"], lambda index: index - offset, 1)
    return len(deliveries.delays_ms), max(deliveries.delays_ms, default=None)


async def _mode(bench: Stack, writer: Agent, task_ids: list[str], per_socket: int) -> Mode:
    api = await bench.start_api(f"api-{per_socket}-per-socket")
    try:
        await _warm_up(bench, api, task_ids[-1])
        await asyncio.sleep(SETTLE_SECONDS)
        rss_before, cpu_before = api.rss(), api.cpu_seconds()
        followers = await _subscribe(bench, api, task_ids, per_socket)
        ready = await followers.expect("ready", SETUP_SECONDS + 60)
        setup_cpu = api.cpu_seconds() - cpu_before
        await asyncio.sleep(SETTLE_SECONDS)
        rss_after = api.rss()
        api_clients, channel_subscribers = await _redis_view(bench.backing.redis_url)
        offset = MODES.index(per_socket) * LIVE_CHANGES
        live_received, live_slowest = await _live_check(writer, followers, task_ids, offset)
        await followers.request("close", "closed", 120)
        await bench.stop_agent(followers)
        await asyncio.sleep(SETTLE_SECONDS)
        rss_closed = api.rss()
    finally:
        await bench.stop_api(api)
    return Mode(
        per_socket,
        ready,
        rss_before,
        rss_after,
        rss_closed,
        api_clients,
        channel_subscribers,
        live_received,
        live_slowest,
        setup_cpu,
    )


def _split(single: Mode, shared: Mode) -> tuple[float, float]:
    """Per-socket and per-subscription memory (KiB), from the two modes' growth."""
    sockets_single = SUBSCRIPTIONS
    sockets_shared = SUBSCRIPTIONS / shared.per_socket
    per_socket = (single.growth - shared.growth) / (sockets_single - sockets_shared)
    per_subscription = (single.growth - sockets_single * per_socket) / SUBSCRIPTIONS
    return per_socket / KIB, per_subscription / KIB


def _figures(modes: list[Mode], straw_man: int) -> list[Figure]:
    figures = [
        Figure(
            "straw man, a redis-py PubSub per subscriber: subscribers served",
            straw_man,
            "",
            f"{SUBSCRIPTIONS:,}",
            straw_man >= SUBSCRIPTIONS,
        )
    ]
    for mode in modes:
        served = mode.ready["served"]
        figures.append(
            Figure(
                f"{mode.label}: subscriptions served",
                served,
                "",
                f"{SUBSCRIPTIONS:,}",
                served == SUBSCRIPTIONS,
            )
        )
        figures.append(
            below(
                f"{mode.label}: API memory per subscription",
                mode.per_subscription_kib,
                "KiB",
                TARGET_KIB,
            )
        )
        figures.append(
            Figure(
                f"{mode.label}: changes delivered with all open",
                mode.live_received,
                "",
                str(LIVE_CHANGES),
                mode.live_received == LIVE_CHANGES,
            )
        )
    if len(modes) == 2:
        per_socket, per_subscription = _split(*modes)
        figures.append(Figure("derived: memory per WebSocket", per_socket, "KiB"))
        figures.append(
            below(
                "derived: memory per subscription, socket excluded",
                per_subscription,
                "KiB",
                TARGET_KIB,
            )
        )
    return figures


async def run(context: Context) -> Report:
    async with stack(context, "idle") as bench:
        maker = await bench.start_api("api-create")
        task_ids = await maker.create_tasks(SUBSCRIPTIONS)
        await bench.stop_api(maker)
        writer = await bench.writer()
        modes = [await _mode(bench, writer, task_ids, per_socket) for per_socket in MODES]
        straw_man = await _pubsub_per_subscriber(context.backing.redis_url)
    return Report(
        figures=_figures(modes, straw_man),
        details=[
            "| mode | sockets | served | errors | set-up s | API CPU µs per subscribe "
            "| RSS before MiB | RSS with all open MiB | KiB per subscription "
            "| RSS after closing MiB | API connections to Redis | channel subscribers "
            "| live changes received | slowest live change ms |",
            "|" + " --- |" * 14,
            *(mode.row() for mode in modes),
            "",
        ],
    )


BENCHMARK = Benchmark(
    name="idle",
    title="10,000 idle subscriptions on one API process",
    method=METHOD,
    time_limit_seconds=420.0,
    run=run,
)
