"""AITASKS_DB_POOL_SIZE bounds the PostgreSQL connections of one API process: an operator
running many of them keeps their sum under PostgreSQL's max_connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

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


# The API's connections to the database the query runs on (the test's own has no name).
API_CONNECTIONS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1
"""


async def _request(client: httpx.AsyncClient, url: str, index: int) -> httpx.Response:
    """A create for even `index`, a list of tasks for odd."""
    if index % 2:
        body: dict[str, object] = {"query": LIST_TASKS}
    else:
        body = {"query": CREATE_TASK, "variables": {"input": {"prompt": f"{index}"}}}
    return await client.post(url, json=body)


async def _load_and_watch(stack: Stack) -> tuple[list[httpx.Response], int, int]:
    """CONCURRENT_REQUESTS creates and lists at once, three times; the most API
    connections seen in PostgreSQL while they ran, and how many there are once they
    have ended."""
    most = 0
    done = asyncio.Event()
    watcher_connection = await asyncpg.connect(stack.database_url)

    async def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, await watcher_connection.fetchval(API_CONNECTIONS, APPLICATION_NAME))
            await asyncio.sleep(0.02)

    limits = httpx.Limits(max_connections=None)
    try:
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            watcher = asyncio.create_task(watch())
            responses: list[httpx.Response] = []
            for _ in range(3):
                batch = (_request(client, stack.graphql_url, i) for i in range(CONCURRENT_REQUESTS))
                responses += await asyncio.gather(*batch)
            done.set()
            await watcher
        after = await watcher_connection.fetchval(API_CONNECTIONS, APPLICATION_NAME)
    finally:
        await watcher_connection.close()
    return responses, most, after


def test_an_api_process_holds_no_more_connections_than_its_pools_allow(
    small_pools: Stack,
) -> None:
    responses, most, after = asyncio.run(_load_and_watch(small_pools))

    assert all(response.status_code == 200 for response in responses)
    assert all("errors" not in response.json() for response in responses), [
        response.json() for response in responses if "errors" in response.json()
    ][:3]
    assert 0 < most <= CONNECTIONS_MAX, most
    assert after <= CONNECTIONS_MAX
