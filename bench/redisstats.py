"""Commands Redis has run, as it counts them (`INFO commandstats`)."""

from __future__ import annotations

from collections import Counter

from redis.asyncio import Redis

# Redis counts the INFO that reads the counters, and the connection's own HELLO/CLIENT.
OWN_COMMANDS = ("info", "hello", "client|setinfo", "client")


async def command_calls(redis_url: str) -> Counter[str]:
    """Calls so far of each command (`publish`, `brpop`, ...), the reading's own left out."""
    redis = Redis.from_url(redis_url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    calls: Counter[str] = Counter()
    for key, value in stats.items():
        command = key.removeprefix("cmdstat_")
        if command not in OWN_COMMANDS:
            calls[command] = int(value["calls"])
    return calls
