"""Per-caller rate limits, counted in Redis so every API process shares them.

Fixed one-minute windows: one INCR (with its EXPIRE, pipelined) per counted request. A
caller may get up to twice its rate across a window's edge, which a per-minute limit
meant to stop floods tolerates; the price is one Redis round trip, not a sorted set.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "aitasks:rate:"


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def retry_after(self, caller: str, bucket: str, per_minute: int) -> float | None:
        """Count one use of `bucket` by `caller`; None while within `per_minute` (0: no
        limit), else the seconds until the window ends. With Redis unreachable, lets the
        request through: the limit protects the service, it must not stop it."""
        if per_minute <= 0:
            return None
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"{KEY_PREFIX}{bucket}:{window}:{caller}"
        try:
            async with self._redis.pipeline(transaction=False) as pipeline:
                pipeline.incr(key)
                pipeline.expire(key, 2 * WINDOW_SECONDS)
                count, _ = await pipeline.execute()
        except Exception as error:
            logger.warning("rate limit not checked (Redis: %s)", error)
            return None
        if count <= per_minute:
            return None
        return (window + 1) * WINDOW_SECONDS - now
