"""Cancel requests on their way to the worker running the task: a Redis list per task
that the API pushes to and the worker polls. The durable request is the task's row
(`cancel_requested_at`); this is only how the worker hears of it quickly.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

# A cancel request reaches the worker running the task as an item on this list.
CANCEL_KEY_PREFIX = "aitasks:cancel:"
# A request whose worker died is dropped after this long; the sweeper ends such a task.
CANCEL_SIGNAL_TTL_SECONDS = 3600


async def signal_cancel(redis: Redis, task_id: uuid.UUID) -> None:
    """Tell the worker running the task to stop it (the request is also in the row)."""
    key = f"{CANCEL_KEY_PREFIX}{task_id}"
    async with redis.pipeline(transaction=True) as pipeline:
        pipeline.lpush(key, "cancel")
        pipeline.expire(key, CANCEL_SIGNAL_TTL_SECONDS)
        await pipeline.execute()


async def take_cancel_request(redis: Redis, task_id: uuid.UUID) -> bool:
    """Whether a cancel request for the task is waiting (and take it).

    A quick poll rather than a blocking BLPOP: cancelling redis-py's client in the middle
    of a blocking command was seen to hang the coroutine for good.
    """
    return await redis.lpop(f"{CANCEL_KEY_PREFIX}{task_id}") is not None
