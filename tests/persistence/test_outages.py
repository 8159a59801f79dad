"""Errors from a real client whose server is unreachable are outages, and name it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis

from persistence.outages import POSTGRESQL, REDIS, unavailable_dependency
from tests.fixtures.stack import free_port


def test_a_refused_postgresql_connection_is_a_postgresql_outage() -> None:
    port = free_port()
    with pytest.raises(OSError) as refused:
        asyncio.run(asyncpg.connect(host="127.0.0.1", port=port, user="postgres", timeout=2))

    assert unavailable_dependency(refused.value) == POSTGRESQL


def test_a_refused_redis_connection_is_a_redis_outage() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=2)
    with pytest.raises(redis.ConnectionError) as refused:
        client.ping()

    assert unavailable_dependency(refused.value) == REDIS


def test_an_error_of_ours_wrapping_an_outage_is_still_that_outage() -> None:
    try:
        try:
            raise redis.TimeoutError("no answer")
        except redis.TimeoutError as cause:
            raise RuntimeError("the enqueue failed") from cause
    except RuntimeError as error:
        assert unavailable_dependency(error) == REDIS


def test_a_bug_is_not_an_outage() -> None:
    assert unavailable_dependency(ValueError("bad")) is None
    assert unavailable_dependency(OSError("a file, not a server")) is None
