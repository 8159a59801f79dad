"""Engines and sessions. One engine per process and event loop, built at start-up."""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from persistence.settings import DB_POOL_SIZE

# No connections past the pool's size (AITASKS_DB_POOL_SIZE): an overflow connection is
# closed as soon as it is returned, and under load that means opening a new PostgreSQL
# connection for a good share of creates, which costs throughput.
POOL_OVERFLOW = 0
# A connection that sat unused this long is pinged before use, and replaced if the server
# has gone. One in steady use is not: the ping is three round trips (BEGIN, ;, ROLLBACK),
# more than a whole createTask needs, and a connection that died under load fails its
# request once and is then replaced with the rest of the pool.
PING_AFTER_IDLE_SECONDS = 10.0


def async_url(database_url: str) -> URL:
    """`postgresql://...` as given by users and pgserver, with the asyncpg driver.

    libpq's `sslmode` (the query parameter managed PostgreSQL hosts hand out) is asyncpg's
    `ssl`, with the same values (disable, prefer, require, verify-ca, verify-full);
    passed on unchanged, asyncpg would refuse it as an unknown argument."""
    url = make_url(database_url).set(drivername="postgresql+asyncpg")
    if "sslmode" in url.query:
        mode = url.query["sslmode"]
        url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    return url


def create_engine(
    database_url: str,
    application_name: str,
    *,
    pooled: bool = True,
    pool_size: int = DB_POOL_SIZE,
) -> AsyncEngine:
    """An engine whose connections say who they are in `pg_stat_activity`, keeping up to
    `pool_size` open; one not `pooled` closes each connection when it is returned."""
    pool: dict[str, Any] = (
        {"pool_size": pool_size, "max_overflow": POOL_OVERFLOW}
        if pooled
        else {"poolclass": NullPool}
    )
    engine = create_async_engine(
        async_url(database_url),
        connect_args={"server_settings": {"application_name": application_name}},
        **pool,
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    target = engine.sync_engine

    @event.listens_for(target, "checkin")
    def note_idle(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(target, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            target.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out another.
            raise DisconnectionError(str(error)) from error


async def _use_json(connection: asyncpg.Connection) -> None:
    # JSON and JSONB read as Python values and are written from them.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The statements on these pools change no session state, so there is nothing to
    reset between uses but an unfinished transaction (a caller cancelled inside one);
    asyncpg's default reset is a round trip on every release."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def create_pool(engine: AsyncEngine, application_name: str, max_size: int) -> asyncpg.Pool:
    """asyncpg's own pool beside the engine, reaching the same database, for the
    statements written out in SQL (`persistence.creation`, `persistence.task_writes`):
    checking a connection out of it, and a statement's trip through it, cost a fraction
    of a session's. Connections open on first use. As with the engine, a connection that
    died under load fails its statement once and is then replaced."""
    _, arguments = engine.dialect.create_connect_args(engine.url)
    pool: asyncpg.Pool = await asyncpg.create_pool(
        min_size=0,
        max_size=max_size,
        init=_use_json,
        reset=_keep_session,
        server_settings={"application_name": application_name},
        **arguments,
    )
    return pool


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: resolvers build their answer from them.
    return async_sessionmaker(engine, expire_on_commit=False)
