"""Engines and sessions. One engine per process and event loop, built at start-up."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Connections a single API or worker process keeps open; the pool grows past it under load.
POOL_SIZE = 10
POOL_OVERFLOW = 20


def async_url(database_url: str) -> URL:
    """`postgresql://...` as given by users and pgserver, with the asyncpg driver."""
    return make_url(database_url).set(drivername="postgresql+asyncpg")


def create_engine(database_url: str, application_name: str) -> AsyncEngine:
    """An engine whose connections say who they are in `pg_stat_activity`."""
    return create_async_engine(
        async_url(database_url),
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: resolvers build their answer from them.
    return async_sessionmaker(engine, expire_on_commit=False)
