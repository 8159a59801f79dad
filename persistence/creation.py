"""The statements of `createTask`, run on the driver's own connection.

Creating a task is the API's hot path, where the ORM session (its unit-of-work
machinery, statement compilation lookups, loading the returned row into an identity map)
costs more CPU than the round trip to PostgreSQL. The statements are built from the model
and compiled once (`persistence.statements`), prepared by asyncpg on each connection, and
the returned row is turned into a `Task` directly. A worker's writes are done the same
way (`persistence.task_writes`); the rest goes through the ORM in `repository`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson
from asyncpg import Connection, Pool

from persistence.grouping import Grouped
from persistence.models import QUEUED_STAGE, FileRole, Task, TaskFile, TaskStatus
from persistence.repository import OWNER_LOCK_KEY, UNFINISHED_SQL, NewTaskRow
from persistence.statements import (
    FIND_BY_IDEMPOTENCY_KEY,
    INSERT_FILE,
    INSERT_KEYED_TASK,
    INSERT_TASK,
    INSERT_TASKS,
    RELEASE_IDEMPOTENCY_KEY,
)

# Counting stops at `up_to`, so the check costs the same however many there are.
COUNT_UNFINISHED = UNFINISHED_SQL.format(owner="$1", up_to="$2")
LOCK_OWNER = f"SELECT pg_advisory_xact_lock({OWNER_LOCK_KEY.format(owner='$1')})"


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def _delays(new: NewTaskRow) -> tuple[timedelta | None, timedelta]:
    """How long until the task may start (None: at once), and how far ahead its message
    goes to the broker: a delayed task handed over now counts as sent for its time."""
    delay = timedelta(seconds=new.delay_seconds) if new.delay_seconds else None
    return delay, delay if delay and new.handed_over else timedelta(0)


async def insert_task(connection: Connection, new: NewTaskRow) -> Task | None:
    """Store a PENDING task and log its creation (sequence 1), in one statement, and its
    input files after it.

    Returns None, storing nothing, when a task with the same idempotency key exists.
    """
    statement = INSERT_TASK if new.idempotency_key is None else INSERT_KEYED_TASK
    record = await connection.fetchrow(
        statement,
        uuid.uuid4(),
        new.owner,
        new.kind,
        new.prompt,
        new.model,
        TaskStatus.PENDING.value,
        QUEUED_STAGE,
        new.priority.value,
        new.timeout_seconds,
        new.idempotency_key,
        _json(new.params),
        _json(new.inputs),
        *_delays(new),
    )
    if record is None:
        return None
    task = Task.from_row(record)
    if new.files:
        await insert_files(connection, task.id, FileRole.INPUT, new.files)
    return task


async def insert_files(
    connection: Connection, task_id: uuid.UUID, role: FileRole, files: Sequence[TaskFile]
) -> None:
    """Store a task's input files or artifacts."""
    rows = [
        (task_id, role.value, file.name, file.content_type, file.size, file.data) for file in files
    ]
    await connection.executemany(INSERT_FILE, rows)


async def lock_owner(connection: Connection, owner: str) -> None:
    """Wait for, then hold until the transaction ends, the owner's lock on its count of
    unfinished tasks."""
    await connection.execute(LOCK_OWNER, owner)


async def count_unfinished(connection: Connection, owner: str, *, up_to: int) -> int:
    """How many of the owner's tasks are PENDING or PROCESSING, counting no further than
    `up_to`."""
    count: int = await connection.fetchval(COUNT_UNFINISHED, owner, up_to)
    return count


async def find_by_idempotency_key(connection: Connection, owner: str, key: str) -> Task | None:
    record = await connection.fetchrow(FIND_BY_IDEMPOTENCY_KEY, owner, key)
    return None if record is None else Task.from_row(record)


async def release_idempotency_key(
    connection: Connection, owner: str, key: str, older_than: datetime
) -> bool:
    """Free a key whose task was created before `older_than`, for a new task to take."""
    status: str = await connection.execute(RELEASE_IDEMPOTENCY_KEY, owner, key, older_than)
    return status != "UPDATE 0"


async def database_now(connection: Connection) -> datetime:
    now: datetime = await connection.fetchval("SELECT now()")
    return now


class TaskInserts:
    """Plain creates from concurrent requests, stored by one statement (see
    `persistence.grouping`).

    A create without files or an idempotency key is one INSERT that commits on its own,
    so the creates of different requests can share a statement: under load the pool's
    round trips, PostgreSQL's work per statement and its commits are spread over the
    group. Each request still gets its answer only once its row is committed.
    """

    def __init__(self, pool: Pool, *, max_rows: int, max_in_flight: int) -> None:
        self._pool = pool
        self._groups: Grouped[NewTaskRow, Task] = Grouped(
            "tasks", self._store, max_items=max_rows, max_in_flight=max_in_flight
        )

    @staticmethod
    def takes(new: NewTaskRow) -> bool:
        """Whether a create can go out in a group: files are rows of their own, in the
        task's transaction, and a key's conflict is settled one create at a time."""
        return not new.files and new.idempotency_key is None

    async def insert(self, new: NewTaskRow) -> Task:
        """Store the task (as `insert_task` does) with the next group to go out."""
        assert self.takes(new)
        return await self._groups.submit(new)

    async def _store(self, group: list[NewTaskRow]) -> list[Task | BaseException]:
        ids = [uuid.uuid4() for _ in group]
        try:
            async with self._pool.acquire() as connection:
                records = await connection.fetch(INSERT_TASKS, *_columns(ids, group))
        except Exception as error:
            if len(group) == 1:
                return [error]
            # One row the database refuses fails the whole statement: each goes again on
            # its own, so that only that create fails.
            alone = await asyncio.gather(*(self._store([new]) for new in group))
            return [outcome for outcomes in alone for outcome in outcomes]
        by_id = {record["id"]: record for record in records}
        return [Task.from_row(by_id[task_id]) for task_id in ids]


def _columns(ids: list[uuid.UUID], rows: list[NewTaskRow]) -> list[Sequence[object]]:
    """INSERT_TASKS's arrays, one element per create."""
    delays = [_delays(new) for new in rows]
    return [
        ids,
        [new.owner for new in rows],
        [new.kind for new in rows],
        [new.prompt for new in rows],
        [new.model for new in rows],
        [TaskStatus.PENDING.value] * len(rows),
        [QUEUED_STAGE] * len(rows),
        [new.priority.value for new in rows],
        [new.timeout_seconds for new in rows],
        [_json(new.params) for new in rows],
        [_json(new.inputs) for new in rows],
        [delay for delay, _ in delays],
        [enqueue_delay for _, enqueue_delay in delays],
    ]
