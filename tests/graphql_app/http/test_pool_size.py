"""AITASKS_DB_POOL_SIZE bounds the PostgreSQL connections of one API process: an operator
running many of them keeps their sum under PostgreSQL's max_connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from graphql_app.http.app import APPLICATION_NAME
from tests.fixtures.graphql import CREATE_TASK
from tests.fixtures.stack import Stack

POOL_SIZE = 2
# Each API process has two pools (SQLAlchemy's and asyncpg's), each of POOL_SIZE.
CONNECTIONS_MAX = 2 * POOL_SIZE
# Requests in flight at once: many more than the connections allowed.
CONCURRENT_REQUESTS = 48
LIST_TASKS = "{ tasks(first: 5) { edges { node { id status } } } }"


@pytest.fixture(scope="module")
def small_pools(make_stack: Callable[..., Stack]) -> Iterator[Stack]:
    stack = make_stack()
    stack.start_api(AITASKS_DB_POOL_SIZE=str(POOL_SIZE))
    yield stack
    stack.terminate()
    stack.wait_stopped()


async def _api_connections(database_url: str) -> int:
    database = urlsplit(database_url).path.lstrip("/")
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            database,
            APPLICATION_NAME,
        )
        return count
    finally:
        await connection.close()


async def _load_and_watch(stack: Stack) -> tuple[list[httpx.Response], int]:
    """CONCURRENT_REQUESTS creates and lists at once, and the most API connections seen
    in PostgreSQL while they ran."""
    most = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, await _api_connections(stack.database_url))
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None)) as client:

        async def one(index: int) -> httpx.Response:
            if index % 2:
                body = {"query": LIST_TASKS}
            else:
                body = {"query": CREATE_TASK, "variables": {"input": {"prompt": f"{index}"}}}
            return await client.post(stack.graphql_url, json=body)

        watcher = asyncio.create_task(watch())
        responses = []
        for _ in range(3):
            responses += await asyncio.gather(*(one(i) for i in range(CONCURRENT_REQUESTS)))
        done.set()
        await watcher
    return responses, most


def test_an_api_process_holds_no_more_connections_than_its_pools_allow(
    small_pools: Stack,
) -> None:
    responses, most = asyncio.run(_load_and_watch(small_pools))

    assert all(response.status_code == 200 for response in responses)
    assert all("errors" not in response.json() for response in responses), [
        response.json() for response in responses if "errors" in response.json()
    ][:3]
    assert 0 < most <= CONNECTIONS_MAX, most
    assert asyncio.run(_api_connections(small_pools.database_url)) <= CONNECTIONS_MAX
