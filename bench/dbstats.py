"""Database work as PostgreSQL itself counts it, from the cumulative statistics views.

The embedded PostgreSQL (pgserver) ships without pg_stat_statements, so work is counted
from `pg_stat_database` (transactions, rows) and `pg_stat_user_tables` (scans of each
table), for the benchmark's own database only. A backend publishes its counters at the
latest when it exits, so a reading is exact once every other connection to the database
has closed: `wait_quiet` waits for that.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, fields

from sqlalchemy import text

from persistence.database import create_engine

APPLICATION_NAME = "aitasks-bench-stats"
QUIET_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.2
TABLES = ("tasks", "task_events")

DATABASE_COUNTERS = text(
    "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched"
    " FROM pg_stat_database WHERE datname = current_database()"
)
TABLE_COUNTERS = text(
    "SELECT coalesce(sum(seq_scan), 0), coalesce(sum(idx_scan), 0)"
    " FROM pg_stat_user_tables WHERE relname = ANY(:tables)"
)
OTHER_BACKENDS = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class Counters:
    transactions: int = 0
    rows_returned: int = 0
    rows_fetched: int = 0
    # Sequential and index scans of `tasks` and `task_events`: about one per statement
    # that reads or changes them (a foreign-key check counts too).
    table_scans: int = 0

    def __sub__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Counters)))


async def read(database_url: str) -> Counters:
    engine = create_engine(database_url, APPLICATION_NAME)
    try:
        async with engine.connect() as connection:
            transactions, returned, fetched = (await connection.execute(DATABASE_COUNTERS)).one()
            sequential, indexed = (
                await connection.execute(TABLE_COUNTERS, {"tables": list(TABLES)})
            ).one()
    finally:
        await engine.dispose()
    return Counters(int(transactions), int(returned), int(fetched), int(sequential + indexed))


async def wait_quiet(database_url: str) -> bool:
    """Wait until no other connection to the database is open; False after the timeout
    (autovacuum, say), when the next reading may miss some work."""
    engine = create_engine(database_url, APPLICATION_NAME)
    deadline = time.monotonic() + QUIET_TIMEOUT_SECONDS
    try:
        async with engine.connect() as connection:
            while time.monotonic() < deadline:
                if not (await connection.execute(OTHER_BACKENDS)).scalar():
                    return True
                await connection.rollback()  # a fresh snapshot of pg_stat_activity
                await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()
    return False
