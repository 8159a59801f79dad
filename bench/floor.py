"""The floor of `createTask`: a FastAPI endpoint that does only what a create must do.

It stores the same row as `createTask`, in the same table with the same columns, and the
creation's entry in `task_events` in the same statement, as `creation.insert_task`
does (one INSERT ... RETURNING in a CTE, and an INSERT ... SELECT from it): one round trip
to PostgreSQL, committed on its own. Then one LPUSH to Redis of a message as long as the
Celery message the API sends. No GraphQL, no ORM, no Celery client, no PUBLISH.
Anything `createTask` costs above this is the price of its layers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from fastapi import FastAPI, Request
from pydantic import BaseModel
from redis.asyncio import Redis

from persistence.database import POOL_OVERFLOW
from persistence.models import EVENT_STATE_COLUMNS, QUEUED_STAGE, TaskPriority, TaskStatus
from persistence.settings import DB_POOL_SIZE, Settings
from tasks.kinds.text import KIND as TEXT_KIND
from tasks.services.callers import DEVELOPMENT_CALLER

APPLICATION_NAME = "aitasks-bench-floor"
# Not a queue any worker reads: the messages only have to reach Redis.
QUEUE_KEY = "aitasks:bench:floor-queue"
TASK_COLUMNS = (
    "id",
    "owner",
    "kind",
    "prompt",
    "model",
    "status",
    "stage",
    "priority",
    "timeout_seconds",
    "idempotency_key",
)
EVENT_COLUMNS = ("task_id", "sequence", *EVENT_STATE_COLUMNS, "delta", "result_reset")
INSERT_TASK = f"""
WITH created AS (
    INSERT INTO tasks ({", ".join(TASK_COLUMNS)})
    VALUES ({", ".join(f"${number}" for number in range(1, len(TASK_COLUMNS) + 1))})
    RETURNING *
), logged AS (
    INSERT INTO task_events ({", ".join(EVENT_COLUMNS)})
    SELECT id, sequence, {", ".join(EVENT_STATE_COLUMNS)}, NULL, true FROM created
)
SELECT id, status, model, sequence, created_at FROM created
"""


class NewTask(BaseModel):
    prompt: str


class CreatedTask(BaseModel):
    id: uuid.UUID
    status: str
    model: str
    sequence: int
    # camelCase: the name clients read in the GraphQL answer too.
    createdAt: datetime


def padded_message(task_id: uuid.UUID, size: int) -> bytes:
    """A JSON message naming the task, padded to `size` bytes (the Celery message's)."""
    empty = json.dumps({"task_id": str(task_id), "padding": ""}).encode()
    padding = "x" * max(0, size - len(empty))
    return json.dumps({"task_id": str(task_id), "padding": padding}).encode()


class Floor:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, settings: Settings, size: int) -> None:
        self._pool = pool
        self._redis = redis
        self._model = settings.effective_default_model
        self._timeout_seconds = settings.task_timeout_default_seconds
        self._message_bytes = size

    async def create(self, prompt: str) -> CreatedTask:
        task_id = uuid.uuid4()
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(
                INSERT_TASK,
                task_id,
                DEVELOPMENT_CALLER,
                TEXT_KIND.name,
                prompt,
                self._model,
                TaskStatus.PENDING.value,
                QUEUED_STAGE,
                TaskPriority.NORMAL.value,
                self._timeout_seconds,
                None,
            )
        await self._redis.lpush(QUEUE_KEY, padded_message(task_id, self._message_bytes))
        return CreatedTask(
            id=row["id"],
            status=row["status"],
            model=row["model"],
            sequence=row["sequence"],
            createdAt=row["created_at"],
        )


def create_floor_app(settings: Settings, message_bytes: int) -> FastAPI:
    database_url, redis_url = settings.require_services()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The product engine's limits: DB_POOL_SIZE kept open, up to POOL_OVERFLOW more.
        pool = await asyncpg.create_pool(
            database_url,
            min_size=DB_POOL_SIZE,
            max_size=DB_POOL_SIZE + POOL_OVERFLOW,
            server_settings={"application_name": APPLICATION_NAME},
        )
        redis = Redis.from_url(redis_url, client_name=APPLICATION_NAME)
        app.state.floor = Floor(pool, redis, settings, message_bytes)
        try:
            yield
        finally:
            await redis.aclose()
            await pool.close()

    app = FastAPI(title="aitasks floor", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.post("/create")
    async def create(new_task: NewTask, request: Request) -> CreatedTask:
        floor: Floor = request.app.state.floor
        return await floor.create(new_task.prompt)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
