"""The hot statements are the model's: each names every column the model has, in the
places a whole row goes, and PostgreSQL prepares each against the migrated database with
the parameters in the order its caller passes them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from persistence import statements
from persistence.database import create_engine, create_pool
from persistence.models import Task, task_events, task_files
from tests.fixtures.stack import Stack

# Statements that hand back whole task rows, and whether each also logs the change.
RETURNS_TASKS = {
    "INSERT_TASK": True,
    "INSERT_KEYED_TASK": True,
    "INSERT_TASKS": True,
    "CLAIM": True,
    "RECORD_OUTPUT": True,
    "COMPLETE": True,
    "FAIL": True,
    "FINISH_CANCELLED": True,
    "RETRY_LATER": True,
    "FIND_BY_IDEMPOTENCY_KEY": False,
}
# A create's parameters, with or without an idempotency key (the same row either way).
INSERT_TASK_TYPES = ["uuid", *["varchar"] * 7, "float8", *["varchar"] * 3, "interval", "interval"]
# Every statement, with the types PostgreSQL must infer for its parameters, in order.
PARAMETER_TYPES = {
    "INSERT_TASK": INSERT_TASK_TYPES,
    "INSERT_KEYED_TASK": INSERT_TASK_TYPES,
    "INSERT_TASKS": [
        "uuid[]",
        "text[]",
        "text[]",
        "text[]",
        "text[]",
        "text[]",
        "text[]",
        "text[]",
        "float8[]",
        "text[]",
        "text[]",
        "interval[]",
        "interval[]",
    ],
    "INSERT_FILE": ["uuid", "varchar", "varchar", "varchar", "int4", "bytea"],
    "FIND_BY_IDEMPOTENCY_KEY": ["varchar", "varchar"],
    "RELEASE_IDEMPOTENCY_KEY": ["varchar", "varchar", "timestamptz"],
    "CLAIM": ["uuid", "varchar", "interval", "int4"],
    "RECORD_OUTPUT": ["uuid", "varchar", "int4", "interval", "float8", "varchar"],
    "COMPLETE": ["uuid", "varchar", "int4", "varchar", "varchar"],
    "FAIL": ["uuid", "varchar", "int4", "varchar"],
    "FINISH_CANCELLED": ["uuid", "varchar", "int4"],
    "RETRY_LATER": ["uuid", "varchar", "int4", "varchar", "interval"],
    "RENEW_LEASE": ["uuid", "int4", "interval"],
    "RELEASE_LEASE": ["uuid", "int4"],
}
TASK_COLUMNS = [column.name for column in Task.__table__.columns]


def _listed(sql: str, before: str) -> list[str]:
    """The names in the list that follows `before` (up to the closing bracket or FROM)."""
    match = re.search(
        re.escape(before) + r"\s*\(?(.*?)(?:\)\s*(?:VALUES|SELECT)|\n?FROM|\))", sql, re.S
    )
    assert match, f"no {before!r} in {sql}"
    return [name.strip().split(".")[-1] for name in match.group(1).split(",")]


@pytest.mark.parametrize("name", sorted(RETURNS_TASKS))
def test_a_statement_returning_tasks_returns_every_column_of_the_model(name: str) -> None:
    sql = getattr(statements, name)
    returning = "RETURNING" if RETURNS_TASKS[name] else "SELECT"
    assert _listed(sql, returning) == TASK_COLUMNS


@pytest.mark.parametrize("name", sorted(name for name, logs in RETURNS_TASKS.items() if logs))
def test_a_change_logs_every_column_of_the_event_log(name: str) -> None:
    sql = getattr(statements, name)
    logged = _listed(sql, "INSERT INTO task_events")
    assert sorted(logged) == sorted(column.name for column in task_events.columns)


def test_a_file_is_stored_with_every_column_of_the_model() -> None:
    stored = _listed(statements.INSERT_FILE, "INSERT INTO task_files")
    assert sorted(stored) == sorted(column.name for column in task_files.columns)


def test_parameters_are_numbered_in_the_order_the_caller_passes_them() -> None:
    from sqlalchemy import Select, bindparam, column, select

    query: Select[Any] = select(column("a")).where(
        column("b") == bindparam("second"), column("c") == bindparam("first")
    )
    sql = statements.compiled(query, "first", "second")
    assert "b = $2" in sql and "c = $1" in sql
    with pytest.raises(ValueError, match="first"):
        statements.compiled(query, "first")


@pytest.fixture
async def connection(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    engine = create_engine(stack.database_url, "aitasks-tests")
    pool = await create_pool(engine, "aitasks-tests", 1)
    try:
        async with pool.acquire() as connection:
            yield connection
    finally:
        await pool.close()
        await engine.dispose()


@pytest.mark.anyio
async def test_every_statement_prepares_against_the_migrated_database(
    connection: asyncpg.Connection,
) -> None:
    for name, expected in PARAMETER_TYPES.items():
        prepared = await connection.prepare(getattr(statements, name))
        assert [parameter.name for parameter in prepared.get_parameters()] == expected, name
