"""What a worker process holds: one event loop, one engine, one Redis client.

Celery has no asyncio. Each worker process keeps a single loop for its whole life and runs
every task body on it, so the engine's pool and the clients are never used from a second
loop. The runtime is made on first use in the process that runs tasks (after the fork),
never at import time, and closed when the process ends.

A prefork pool process runs one task at a time and drives the loop itself. The text
worker (tasks/worker/text_worker.py) runs many tasks at once from Celery's threads: there the loop
runs in a thread of its own and each task's thread hands its coroutine to it and waits.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
import openai
from redis.asyncio import Redis

from persistence import task_writes
from persistence.database import create_engine, create_pool, create_sessionmaker
from persistence.models import TaskChange
from persistence.settings import DEMO_MODEL, Settings, get_settings
from tasks.events import publish
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
    def __init__(
        self, settings: Settings, *, pool_size: int = task_writes.POOL_SIZE, threaded: bool = False
    ) -> None:
        database_url, redis_url = settings.require_services()
        name = f"aitasks-worker-{os.getpid()}"
        self.settings = settings
        self.loop = _new_event_loop()
        self._loop_thread: threading.Thread | None = None
        if threaded:
            self._loop_thread = threading.Thread(
                target=self.loop.run_forever, name="aitasks-event-loop", daemon=True
            )
            self._loop_thread.start()
        # Only the sweeper and a task's input files go through the ORM here: their
        # connections are closed after use, so at rest a worker process holds just the
        # one its task writes use, as many as before those writes had a pool of their own.
        self.engine = create_engine(database_url, application_name=name, pooled=False)
        self.sessionmaker = create_sessionmaker(self.engine)
        # The writes to the task being run skip the ORM (see persistence.task_writes).
        self.pool: asyncpg.Pool = self.run(create_pool(self.engine, name, pool_size))
        self.redis = Redis.from_url(redis_url, client_name=name)
        self._openai: openai.AsyncOpenAI | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the process's loop and return its result; with the loop in
        its thread, from any other thread, several at once."""
        if self._loop_thread is None:
            return self.loop.run_until_complete(coroutine)
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def provider_for(self, model: str) -> TextProvider:
        if model == DEMO_MODEL:
            return DemoProvider(self.settings.demo_duration_seconds)
        return OpenAIProvider(self._openai_client(), self.settings.openai_timeout_seconds)

    def _openai_client(self) -> openai.AsyncOpenAI:
        if self._openai is None:
            key = self.settings.openai_api_key
            self._openai = create_client(
                key.get_secret_value() if key else "",
                self.settings.openai_base_url,
                self.settings.openai_timeout_seconds,
            )
        return self._openai

    def warm_up(self) -> None:
        """Make the model's client and load the modules of its chat API now, before
        tasks come: in a fresh process on a busy machine they took seconds of the loop
        under the first task, time in which its claim was not renewed."""
        importlib.import_module("openai.resources.chat.completions")
        if self.settings.openai_api_key is not None:
            self._openai_client()

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
        if self._loop_thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join()
        self.loop.close()


_runtime: WorkerRuntime | None = None
_runtime_pid: int | None = None
# Set by the text worker before Celery starts: its tasks share one loop from many threads.
_threaded_pool_size: int | None = None
# Many threads may ask for the runtime at once when the text worker takes its first tasks.
_runtime_lock = threading.Lock()


def use_threaded_runtime(pool_size: int) -> None:
    """Make this process's runtime run its loop in a thread of its own, for tasks handed
    to it from many threads, with `pool_size` connections for their writes."""
    global _threaded_pool_size
    _threaded_pool_size = pool_size


def get_runtime() -> WorkerRuntime:
    """This process's runtime, made on first use; a forked child makes its own."""
    global _runtime, _runtime_pid
    with _runtime_lock:
        if _runtime is None or _runtime_pid != os.getpid():
            if _threaded_pool_size is None:
                _runtime = WorkerRuntime(get_settings())
            else:
                _runtime = WorkerRuntime(
                    get_settings(), pool_size=_threaded_pool_size, threaded=True
                )
            _runtime_pid = os.getpid()
        return _runtime


def close_runtime() -> None:
    global _runtime
    if _runtime is not None and _runtime_pid == os.getpid():
        _runtime.close()
    _runtime = None
