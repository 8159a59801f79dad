"""Grouped creates (`creation.TaskInserts`): concurrent plain creates share a statement
and each comes back as the row `insert_task` would have stored, with its creation logged;
a row the database refuses fails only its own create."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from persistence import creation
from persistence.creation import TaskInserts
from persistence.database import create_engine, create_pool
from persistence.grouping import GROUP_SIZES
from persistence.models import MODEL_NAME_MAX_CHARS, Task, TaskPriority
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import new_row

pytestmark = pytest.mark.anyio
OWNER = "tests-creation"
POOL_SIZE = 6
# Columns that differ between two creates of the same input.
OWN_COLUMNS = {"id", "created_at", "updated_at", "enqueued_at", "prompt"}


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    engine = create_engine(stack.database_url, "aitasks-tests")
    pool = await create_pool(engine, "aitasks-tests", POOL_SIZE)
    try:
        yield pool
    finally:
        await pool.close()
        await engine.dispose()


def _statements() -> float:
    """Grouped statements sent so far by this process."""
    return next(
        sample.value
        for metric in GROUP_SIZES.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels["sent"] == "tasks"
    )


def _columns(task: Task) -> dict[str, object]:
    return {
        key: value
        for key, value in task.__dict__.items()
        if not key.startswith("_") and key not in OWN_COLUMNS
    }


async def test_concurrent_creates_share_statements_and_match_single_inserts(
    pool: asyncpg.Pool,
) -> None:
    inserts = TaskInserts(pool, max_rows=8, max_in_flight=1)
    rows = [
        replace(new_row(f"grouped {n}", priority=TaskPriority.HIGH), owner=OWNER) for n in range(20)
    ]
    before = _statements()

    tasks = await asyncio.gather(*(inserts.insert(row) for row in rows))

    statements = _statements() - before
    # One statement at a time, at most 8 rows each: 20 creates need 3 to 20 statements,
    # and all 20 only if no two ever arrived together.
    assert 3 <= statements < 20
    assert [task.prompt for task in tasks] == [row.prompt for row in rows]
    assert len({task.id for task in tasks}) == 20
    async with pool.acquire() as connection:
        single = await creation.insert_task(connection, rows[0])
        assert single is not None
        for task in tasks:
            stored = await connection.fetchrow("SELECT * FROM tasks WHERE id = $1", task.id)
            assert _columns(Task.from_row(stored)) == _columns(task) == _columns(single)
            logged = await connection.fetch(
                "SELECT sequence, status FROM task_events WHERE task_id = $1", task.id
            )
            assert [(event["sequence"], event["status"]) for event in logged] == [(1, "PENDING")]


async def test_a_refused_row_fails_only_its_own_create(pool: asyncpg.Pool) -> None:
    inserts = TaskInserts(pool, max_rows=8, max_in_flight=1)
    good = [replace(new_row(f"fine {n}"), owner=OWNER) for n in range(5)]
    # Past the column's length: validation refuses it before this, the database here.
    bad = replace(new_row("too long"), owner=OWNER, model="m" * (MODEL_NAME_MAX_CHARS + 1))

    outcomes = await asyncio.gather(
        *(inserts.insert(row) for row in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )

    assert isinstance(outcomes[2], asyncpg.StringDataRightTruncationError)
    stored = [outcome for outcome in outcomes if isinstance(outcome, Task)]
    assert [task.prompt for task in stored] == [row.prompt for row in good]
    async with pool.acquire() as connection:
        count = await connection.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[])", [t.id for t in stored]
        )
    assert count == 5


async def test_a_lone_create_goes_out_at_once(pool: asyncpg.Pool) -> None:
    inserts = TaskInserts(pool, max_rows=8, max_in_flight=2)
    before = _statements()

    task = await asyncio.wait_for(inserts.insert(replace(new_row("alone"), owner=OWNER)), 10)

    assert _statements() - before == 1
    assert isinstance(task.id, uuid.UUID)


def test_files_and_keys_are_not_grouped() -> None:
    assert TaskInserts.takes(new_row("plain"))
    assert not TaskInserts.takes(new_row("keyed", idempotency_key="k"))
