"""While PostgreSQL cannot be reached, requests are answered 503 with Retry-After and a
GraphQL error that names it, never a bare 500; while Redis is down they are served."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets import Subprotocol

from tasks.services.callers import KEY_PREFIX
from tests.fixtures.graphql import CREATE_TASK
from tests.fixtures.redis_server import RestartableRedis
from tests.fixtures.stack import Stack, free_port

# Nothing listens there: PostgreSQL "down" from the API's first request on.
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:{port}/aitasks"
TASK_QUERY = "query ($id: ID!) { task(id: $id) { id status } }"
# Well formed, so the API looks it up in PostgreSQL.
SOME_KEY = KEY_PREFIX + "0" * 40
SOME_TASK_ID = "8d4cbb0b-5a5b-4a43-9d53-8f5a3e2a8c1e"
WATCH = "subscription ($id: ID!) { taskStatus(id: $id) { sequence status } }"


def graphql(stack: Stack, query: str, variables: dict[str, Any], key: str | None = None) -> Any:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = json.dumps({"query": query, "variables": variables})
    return httpx.post(stack.graphql_url, content=body, headers=headers, timeout=30)


def assert_unavailable(response: httpx.Response, dependency: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["SERVICE_UNAVAILABLE"]
    assert errors[0]["extensions"]["dependency"] == dependency
    assert f"{dependency} cannot be reached" in errors[0]["message"]


@pytest.mark.parametrize("auth", ["off", "on"])
def test_requests_while_postgresql_is_unreachable_are_answered_503(
    make_stack: Callable[..., Stack], auth: str
) -> None:
    stack = make_stack()
    database = UNREACHABLE_DATABASE.format(port=free_port())
    api = stack.start_api(AITASKS_DATABASE_URL=database, AITASKS_AUTH=auth)
    key = SOME_KEY if auth == "on" else None

    created = graphql(stack, CREATE_TASK, {"input": {"prompt": "Store me"}}, key)
    task = graphql(stack, TASK_QUERY, {"id": "8d4cbb0b-5a5b-4a43-9d53-8f5a3e2a8c1e"}, key)
    ready = httpx.get(f"{stack.api_url}/readyz", timeout=30)

    assert_unavailable(created, "PostgreSQL")
    assert_unavailable(task, "PostgreSQL")
    assert ready.status_code == 503
    assert ready.json()["down"] == ["PostgreSQL"]
    # The operator reads that PostgreSQL is unreachable, not a traceback per request.
    log = api.log()
    assert "PostgreSQL is unreachable" in log
    assert "Traceback" not in log, log


def test_requests_while_redis_is_down_are_served_without_it(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    redis = RestartableRedis(tmp_path / "redis").start()
    try:
        stack = make_stack(AITASKS_REDIS_URL=redis.url, AITASKS_REQUESTS_PER_MINUTE="600")
        stack.start_api()
        redis.stop()
        # The rate limit (kept in Redis) lets requests through; the task is stored and
        # its message sent once Redis is back.
        created = graphql(stack, CREATE_TASK, {"input": {"prompt": "Queue me later"}})
        task = created.json()["data"]["createTask"]
        read = graphql(stack, TASK_QUERY, {"id": task["id"]})
    finally:
        redis.stop()

    assert created.status_code == 200 and task["status"] == "PENDING"
    assert read.status_code == 200
    assert read.json()["data"]["task"] == {"id": task["id"], "status": "PENDING"}


async def _socket_answers(stack: Stack, init: dict[str, Any], subscribe: bool) -> list[Any]:
    """What the API sends on a new WebSocket (connection_init, then one `taskStatus`
    if `subscribe`) until it closes the socket or completes the operation; a close is
    the last item, as (code, reason)."""
    received: list[Any] = []
    async with websockets.connect(
        stack.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        if subscribe:
            payload = {"query": WATCH, "variables": {"id": SOME_TASK_ID}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        try:
            while not received or received[-1].get("type") not in ("complete", "error"):
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, "the API closed the connection without a code"
            received.append((closed.rcvd.code, closed.rcvd.reason))
    return received


def test_a_websocket_opened_while_postgresql_is_unreachable_is_closed_1013(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    database = UNREACHABLE_DATABASE.format(port=free_port())
    stack.start_api(AITASKS_DATABASE_URL=database, AITASKS_AUTH="on")

    # The key cannot be checked: "try again later", not 4403 (a bad key) nor 1011.
    answers = asyncio.run(_socket_answers(stack, {"apiKey": SOME_KEY}, subscribe=False))

    assert answers == [
        (1013, "Service unavailable: PostgreSQL cannot be reached; try again shortly")
    ]


def test_a_subscription_started_while_postgresql_is_unreachable_gets_a_typed_error(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    database = UNREACHABLE_DATABASE.format(port=free_port())
    stack.start_api(AITASKS_DATABASE_URL=database)

    answers = asyncio.run(_socket_answers(stack, {}, subscribe=True))

    assert answers[0] == {"type": "connection_ack"}
    errors = [error for answer in answers[1:] for error in _errors_of(answer)]
    assert [error["extensions"] for error in errors] == [
        {"code": "SERVICE_UNAVAILABLE", "dependency": "PostgreSQL"}
    ]
    assert "PostgreSQL cannot be reached" in errors[0]["message"]


def _errors_of(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, dict):
        raise AssertionError(f"the socket was closed instead: {answer}")
    payload = answer.get("payload")
    if answer["type"] == "error":
        return list(payload)
    if answer["type"] == "next":
        return list(payload.get("errors") or [])
    return []
