"""Telling an outage (PostgreSQL or Redis unreachable, restarting, shutting down) from a
fault of ours, so a caller can be told "unavailable, try again" instead of "internal
error"."""

from __future__ import annotations

import asyncpg
from redis import exceptions as redis_errors
from sqlalchemy import exc as sqlalchemy_errors

POSTGRESQL = "PostgreSQL"
REDIS = "Redis"

# PostgreSQL is not there, is starting or stopping, or dropped the connection.
_POSTGRESQL_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionDoesNotExistError,
)
# Redis is not there, does not answer in time, or is still loading its data.
_REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError)
# Errors that name no server: the frames they passed through say whose client raised them.
_NETWORK = (OSError, TimeoutError)
# How far down a chain of causes to look.
CHAIN_MAX = 10


def _client_of(error: BaseException) -> str | None:
    traceback = error.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if module.startswith(("asyncpg", "sqlalchemy")):
            return POSTGRESQL
        if module.startswith("redis"):
            return REDIS
        traceback = traceback.tb_next
    return None


def _one(error: BaseException) -> str | None:
    if isinstance(error, _REDIS_DOWN):
        return REDIS
    if isinstance(error, _POSTGRESQL_DOWN):
        return POSTGRESQL
    if isinstance(error, asyncpg.InterfaceError) and "closed" in str(error):
        # A pooled connection the server dropped ("connection is closed").
        return POSTGRESQL
    if isinstance(error, sqlalchemy_errors.DBAPIError) and error.connection_invalidated:
        return POSTGRESQL
    if isinstance(error, _NETWORK):
        return _client_of(error)
    return None


def unavailable_dependency(error: BaseException) -> str | None:
    """The server ("PostgreSQL" or "Redis") whose outage raised `error`, or None when it is
    not an outage."""
    seen: BaseException | None = error
    for _ in range(CHAIN_MAX):
        if seen is None:
            return None
        found = _one(seen)
        if found:
            return found
        seen = seen.__cause__ or seen.__context__
    return None
