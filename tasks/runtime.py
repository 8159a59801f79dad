"""What a worker process holds: one event loop, one engine, one Redis client.

Celery has no asyncio. Each worker process keeps a single loop for its whole life and runs
every task body on it, so the engine's pool and the clients are never used from a second
loop. The runtime is made on first use in the process that runs tasks (after the fork),
never at import time, and closed when the process ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
import openai
from redis.asyncio import Redis

from persistence import task_writes
from persistence.database import create_engine, create_pool, create_sessionmaker
from persistence.events import publish
from persistence.models import TaskChange
from persistence.settings import DEMO_MODEL, Settings, get_settings
from tasks.providers.base import TextProvider
from tasks.providers.demo import DemoProvider
from tasks.providers.openai_provider import OpenAIProvider, create_client

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (uvicorn's `standard` extra brings it): less CPU per task."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        database_url, redis_url = settings.require_services()
        name = f"aitasks-worker-{os.getpid()}"
        self.settings = settings
        self.loop = _new_event_loop()
        # Only the sweeper and a task's input files go through the ORM here: their
        # connections are closed after use, so at rest a worker process holds just the
        # one its task writes use, as many as before those writes had a pool of their own.
        self.engine = create_engine(database_url, application_name=name, pooled=False)
        self.sessionmaker = create_sessionmaker(self.engine)
        # The writes to the task being run skip the ORM (see persistence.task_writes).
        self.pool: asyncpg.Pool = self.run(create_pool(self.engine, name, task_writes.POOL_SIZE))
        self.redis = Redis.from_url(redis_url, client_name=name)
        self._openai: openai.AsyncOpenAI | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def provider_for(self, model: str) -> TextProvider:
        if model == DEMO_MODEL:
            return DemoProvider(self.settings.demo_duration_seconds)
        if self._openai is None:
            key = self.settings.openai_api_key
            self._openai = create_client(
                key.get_secret_value() if key else "",
                self.settings.openai_base_url,
                self.settings.openai_timeout_seconds,
            )
        return OpenAIProvider(self._openai, self.settings.openai_timeout_seconds)

    async def write(
        self, change: Callable[[asyncpg.Connection], Awaitable[TaskChange | None]]
    ) -> TaskChange | None:
        """Apply one change (committed when it returns); then publish it."""
        async with self.pool.acquire() as connection:
            made = await change(connection)
        if made is not None:
            try:
                await publish(self.redis, made.event)
            except Exception:
                # The change is committed; subscribers catch up from the log.
                logger.exception(
                    "task %s: change %d not published", made.task.id, made.event.sequence
                )
        return made

    def close(self) -> None:
        async def close_all() -> None:
            await self.pool.close()
            await self.engine.dispose()
            await self.redis.aclose()
            if self._openai is not None:
                await self._openai.close()

        self.run(close_all())
        self.loop.close()


_runtime: WorkerRuntime | None = None
_runtime_pid: int | None = None


def get_runtime() -> WorkerRuntime:
    """This process's runtime, made on first use; a forked child makes its own."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        _runtime, _runtime_pid = WorkerRuntime(get_settings()), os.getpid()
    return _runtime


def close_runtime() -> None:
    global _runtime
    if _runtime is not None and _runtime_pid == os.getpid():
        _runtime.close()
    _runtime = None
