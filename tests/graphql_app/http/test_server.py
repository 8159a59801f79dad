"""Stopping: the API closes WebSockets with 1001 and exits in time; a worker told to stop
finishes its running task, which ends COMPLETED once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import websockets
from websockets import Subprotocol

from graphql_app.http.app import APPLICATION_NAME
from persistence.settings import Settings
from tests.fixtures.graphql import (
    TASK_STATUS,
    create_task,
    follow,
    get_task,
    poll_until_finished,
    subscribe,
)
from tests.fixtures.stack import START_TIMEOUT_SECONDS, Process, Stack, wait_until
from tests.fixtures.tasks import insert_pending_task, logged_events

pytestmark = pytest.mark.anyio
SHUTDOWN_SECONDS = Settings.model_fields["shutdown_timeout_seconds"].default
SUBSCRIBERS = 3


@pytest.fixture
def stopping(make_stack: Callable[..., Stack]) -> tuple[Stack, Process, str]:
    """An API of its own (the test stops it) and a task that stays PENDING."""
    stack = make_stack()
    api = stack.start_api()
    return stack, api, str(insert_pending_task(stack.database_url, "never runs").id)


async def test_sigterm_closes_subscriptions_with_going_away_and_the_api_exits(
    stopping: tuple[Stack, Process, str],
) -> None:
    stack, api, waiting = stopping
    sockets = []
    for index in range(SUBSCRIBERS):
        ws = await websockets.connect(
            stack.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]
        )
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": TASK_STATUS, "variables": {"id": waiting}}
        await ws.send(json.dumps({"id": str(index), "type": "subscribe", "payload": payload}))
        assert json.loads(await ws.recv())["type"] == "next"
        sockets.append(ws)

    os.kill(api.popen.pid, signal.SIGTERM)
    codes = []
    for ws in sockets:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), SHUTDOWN_SECONDS)
        assert closed.value.rcvd is not None
        codes.append(closed.value.rcvd.code)
    exit_code = await asyncio.to_thread(api.popen.wait, SHUTDOWN_SECONDS)

    assert codes == [1001] * SUBSCRIBERS
    # uvicorn stops cleanly, then re-raises the signal so a supervisor sees why it ended.
    assert exit_code in (0, -signal.SIGTERM)
    assert "Finished server process" in api.log()


def test_sigterm_to_a_worker_mid_task_finishes_the_task_once(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(AITASKS_DEMO_DURATION_SECONDS="3")
    worker = stack.start_worker()
    stack.start_api()
    task = create_task(stack, prompt="Finish me before you go", model="demo")
    wait_until(
        lambda: (get_task(stack, task["id"]) or {}).get("status") == "PROCESSING",
        30,
        "the worker to start the task",
    )

    # The worker's main process only, as `docker stop` or systemd would: its pool
    # processes finish what they are running.
    os.kill(worker.popen.pid, signal.SIGTERM)
    worker.popen.wait(60)
    final = poll_until_finished(stack, task["id"])

    assert final["status"] == "COMPLETED"
    assert final["attempts"] == 1
    statuses = [event.status for event in logged_events(stack.database_url, task["id"])]
    assert statuses.count("COMPLETED") == 1


@pytest.fixture
def uvicorns_protocol(make_stack: Callable[..., Stack]) -> tuple[Stack, Process, str]:
    """As `stopping`, with the API on uvicorn's own WebSocket protocol."""
    stack = make_stack()
    api = stack.start_api(AITASKS_WS_PROTOCOL="uvicorn")
    return stack, api, str(insert_pending_task(stack.database_url, "never runs").id)


async def test_with_uvicorns_own_websocket_protocol_subscriptions_are_served_and_closed_with_1001(
    uvicorns_protocol: tuple[Stack, Process, str],
) -> None:
    stack, api, waiting = uvicorns_protocol
    subprotocols = [Subprotocol("graphql-transport-ws")]
    async with websockets.connect(stack.ws_url, subprotocols=subprotocols) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": TASK_STATUS, "variables": {"id": waiting}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        assert json.loads(await ws.recv())["payload"]["data"]["taskStatus"]["status"] == "PENDING"

        os.kill(api.popen.pid, signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), SHUTDOWN_SECONDS)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


def _event_subscribers(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        names = [entry["name"] for entry in client.client_list(_type="pubsub")]
        return names.count(f"{APPLICATION_NAME}-events")
    finally:
        client.close()


async def _follow_all(ws_url: str, task_id: str, count: int) -> list[list[dict[str, Any]]]:
    async def one() -> list[dict[str, Any]]:
        # after: 0, the whole story from the first change, however late this one joins.
        variables = {"id": task_id, "after": 0}
        return [update async for update in subscribe(ws_url, TASK_STATUS, variables, "taskStatus")]

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _assert_whole_story(updates: list[dict[str, Any]]) -> None:
    sequences = [update["sequence"] for update in updates]
    assert sequences == sorted(set(sequences)), sequences
    assert updates[-1]["status"] == "COMPLETED"
    streamed = "".join(update["delta"] or "" for update in updates)
    assert streamed == updates[-1]["task"]["result"]


@pytest.fixture
def two_process_api(make_stack: Callable[..., Stack]) -> Stack:
    """One `aitasks api` with AITASKS_API_WORKERS=2, once both processes listen for changes."""
    stack = make_stack(AITASKS_DEMO_DURATION_SECONDS="2")
    stack.start_worker()
    stack.start_api(AITASKS_API_WORKERS="2")
    wait_until(
        lambda: _event_subscribers(stack.redis_url) == 2,
        START_TIMEOUT_SECONDS,
        "two API processes to subscribe to task changes",
    )
    return stack


async def test_api_workers_serve_one_port_from_processes_each_with_its_own_redis_subscription(
    two_process_api: Stack,
) -> None:
    task = create_task(two_process_api, prompt="Tell every process", model="demo")

    followed = await _follow_all(two_process_api.ws_url, task["id"], SUBSCRIBERS * 2)

    assert _event_subscribers(two_process_api.redis_url) == 2
    for updates in followed:
        _assert_whole_story(updates)


@pytest.fixture
def two_apis(make_stack: Callable[..., Stack]) -> Iterator[tuple[Stack, Stack]]:
    """Two `aitasks api` processes, each on its own port, sharing PostgreSQL and Redis."""
    stack = make_stack(AITASKS_DEMO_DURATION_SECONDS="2")
    stack.start_worker()
    stack.start_api()
    other = Stack(stack.database_url, stack.redis_url, stack.env, stack.log_dir)
    other.start_api()
    yield stack, other
    other.terminate()
    other.wait_stopped()


async def test_a_subscriber_on_one_api_process_gets_the_changes_of_a_task_created_through_another(
    two_apis: tuple[Stack, Stack],
) -> None:
    here, there = two_apis
    task = create_task(there, prompt="Made over there, watched here", model="demo")

    updates = await follow(here, task["id"], after=0)

    _assert_whole_story(updates)
    assert updates[0]["sequence"] == 1
