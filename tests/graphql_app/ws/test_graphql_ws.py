"""The shared path of `taskStatus`: one execution per update for every subscriber of a
task that asked the same, each subscriber still getting its own whole stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets import Subprotocol

from tests.fixtures.graphql import TASK_STATUS, follow, subscribe, watch_many
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import ARTIFACT, change_task, insert_pending_task, send_all

SUBSCRIBERS = 5
CLOSE_WAIT_SECONDS = 10.0
SENT = "aitasks_subscription_updates_total"


def sent(stack: Stack) -> dict[str, float]:
    """The shared path's updates so far, by how they were made."""
    text = httpx.get(f"{stack.api_url}/metrics").text
    return {
        sample.labels["source"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == SENT
    }


def test_subscribers_of_one_task_share_each_execution_and_each_get_the_whole_stream(
    stack: Stack,
) -> None:
    task_id = str(insert_pending_task(stack.database_url, "shared by five", "echo").id)
    results: list[list[dict[str, Any]]] = [[] for _ in range(SUBSCRIBERS)]
    before = sent(stack)

    async def scenario() -> None:
        started = asyncio.Event()
        following = asyncio.ensure_future(
            watch_many(
                stack.ws_url,
                [task_id] * SUBSCRIBERS,
                per_connection=1,
                into=results,
                started=started,
            )
        )
        await asyncio.wait(
            [following, asyncio.ensure_future(started.wait())],
            timeout=30,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert started.is_set(), "not every subscription got its first update"
        await asyncio.to_thread(send_all, stack, [task_id])
        await following

    asyncio.run(scenario())

    after = sent(stack)
    stream = results[0]
    assert [update["sequence"] for update in stream] == list(range(1, len(stream) + 1))
    assert stream[-1]["status"] == "COMPLETED"
    assert stream[-1]["task"]["result"] == "Echo: shared by five"
    assert all(updates == stream for updates in results)
    executed = after["executed"] - before.get("executed", 0)
    shared = after["shared"] - before.get("shared", 0)
    assert executed == len(stream), "each update is executed once for all five"
    assert shared == (SUBSCRIBERS - 1) * len(stream)


def test_artifact_urls_are_each_subscribers_own_host(stack: Stack) -> None:
    task_id = str(insert_pending_task(stack.database_url, "drawn for two", "echo").id)
    steps = ["claim", "complete with an artifact"]
    change_task(stack.database_url, stack.redis_url, task_id, steps, announce=True)
    by_address = asyncio.run(follow(stack, task_id))
    by_name = asyncio.run(follow_at(stack.ws_url.replace("127.0.0.1", "localhost"), task_id))

    port = stack.ws_url.split(":")[2].split("/")[0]
    (artifact,) = by_address[-1]["task"]["artifacts"]
    assert artifact["name"] == ARTIFACT.name
    assert artifact["url"].startswith(f"http://127.0.0.1:{port}/")
    (artifact,) = by_name[-1]["task"]["artifacts"]
    assert artifact["url"].startswith(f"http://localhost:{port}/")


async def follow_at(url: str, task_id: str) -> list[dict[str, Any]]:
    return [
        update
        async for update in subscribe(
            url, TASK_STATUS, {"id": task_id, "after": None}, "taskStatus"
        )
    ]


CHOOSING = """
subscription Choose($id: ID!, $withTask: Boolean!) {
  taskStatus(id: $id) { sequence status task @include(if: $withTask) { id } }
}
"""


def test_subscribers_whose_variables_shape_the_selection_each_get_their_own(
    stack: Stack,
) -> None:
    task_id = str(insert_pending_task(stack.database_url, "chosen", "echo").id)
    change_task(stack.database_url, stack.redis_url, task_id, ["claim", "complete"], announce=True)

    async def both() -> list[list[dict[str, Any]]]:
        return [
            [
                update
                async for update in subscribe(
                    stack.ws_url, CHOOSING, {"id": task_id, "withTask": with_task}, "taskStatus"
                )
            ]
            for with_task in (True, False)
        ]

    with_task, without = asyncio.run(both())

    assert with_task == [{"sequence": 3, "status": "COMPLETED", "task": {"id": task_id}}]
    assert without == [{"sequence": 3, "status": "COMPLETED"}]


async def _refused_message(url: str, message: str | bytes) -> tuple[int, str]:
    """Open a socket, init it, send `message`; the close the server answers with."""
    subprotocols = [Subprotocol("graphql-transport-ws")]
    async with websockets.connect(url, subprotocols=subprotocols) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(message)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), CLOSE_WAIT_SECONDS)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_message_that_is_not_json_text_closes_the_socket_with_4400(stack: Stack) -> None:
    assert asyncio.run(_refused_message(stack.ws_url, "{not json")) == (
        4400,
        "WebSocket message must be valid JSON",
    )
    assert asyncio.run(_refused_message(stack.ws_url, b'{"type": "ping"}')) == (
        4400,
        "WebSocket message type must be text",
    )


async def _close_before_init(url: str, message: str) -> tuple[int, str]:
    subprotocols = [Subprotocol("graphql-transport-ws")]
    async with websockets.connect(url, subprotocols=subprotocols) as ws:
        await ws.send(message)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), CLOSE_WAIT_SECONDS)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


# JSON, but no graphql-transport-ws message: not an object, or one nested past any use.
NOT_A_MESSAGE = [
    "[1]",
    "1",
    "null",
    '"hello"',
    "[" * 10_000 + "]" * 10_000,
    '{"type": "connection_init", "payload": ' + "[" * 10_000 + "]" * 10_000 + "}",
]


@pytest.mark.parametrize("message", NOT_A_MESSAGE, ids=range(len(NOT_A_MESSAGE)))
def test_json_that_is_not_a_message_closes_the_socket_with_4400_before_the_init(
    stack: Stack, message: str
) -> None:
    code, reason = asyncio.run(_close_before_init(stack.ws_url, message))

    assert code == 4400
    assert "Error" not in reason and "Traceback" not in reason


@pytest.mark.parametrize("message", NOT_A_MESSAGE[:2], ids=range(2))
def test_json_that_is_not_a_message_closes_the_socket_with_4400_after_the_init(
    stack: Stack, message: str
) -> None:
    code, reason = asyncio.run(_refused_message(stack.ws_url, message))

    assert code == 4400
    assert "Error" not in reason
