"""API keys and ownership, against an API that requires keys: only a task's owner sees
it, another caller gets exactly what an unknown id gets, and a request without a valid
key gets nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from websockets import Subprotocol

from persistence.settings import ConfigurationError, Settings
from tests.fixtures.files import image_bytes, inline
from tests.fixtures.graphql import (
    CANCEL_TASK,
    CREATE_TASK,
    GET_TASK,
    RETRY_TASK,
    TASK_FIELDS,
    TASK_STATUS,
    TASK_UPDATES,
)
from tests.fixtures.keys import aitasks, new_key
from tests.fixtures.stack import Stack, wait_until

pytestmark = pytest.mark.anyio
LIST_TASKS = f"query List {{ tasks(first: 100) {{ edges {{ node {{ {TASK_FIELDS} }} }} }} }}"
FINISH_SECONDS = 45.0
INIT_TIMEOUT_SECONDS = 1
SUBSCRIPTIONS_MAX = 3
SOCKETS_MAX = 2


@dataclass
class Secured:
    stack: Stack
    alice: str
    bob: str
    revoked: str


@pytest.fixture(scope="module")
def secured(make_stack: Callable[..., Stack]) -> Secured:
    stack = make_stack(
        AITASKS_AUTH="on",
        AITASKS_AUTH_CACHE_SECONDS="0",
        AITASKS_WS_CONNECTION_INIT_TIMEOUT_SECONDS=str(INIT_TIMEOUT_SECONDS),
        AITASKS_WS_SUBSCRIPTIONS_MAX=str(SUBSCRIPTIONS_MAX),
        AITASKS_WS_CONNECTIONS_MAX_PER_KEY=str(SOCKETS_MAX),
    )
    stack.start_worker()
    stack.start_api()
    revoked = new_key(stack, "carol")
    listed = aitasks(stack, "keys", "list").stdout
    carol_id = next(line.split()[0] for line in listed.splitlines() if "carol" in line)
    aitasks(stack, "keys", "revoke", carol_id)
    return Secured(stack, new_key(stack, "alice"), new_key(stack, "bob"), revoked)


def call(
    stack: Stack, query: str, variables: dict[str, Any] | None = None, key: str | None = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        stack.graphql_url,
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=15,
    )


def data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


def finished_task(secured: Secured) -> dict[str, Any]:
    """A COMPLETED image task of alice's, with an artifact."""
    task_input = {
        "kind": "IMAGE_PROCESSING",
        "params": {"operations": [{"op": "grayscale"}]},
        "files": [inline("photo.png", image_bytes())],
    }
    created = data(call(secured.stack, CREATE_TASK, {"input": task_input}, secured.alice))
    task_id = created["createTask"]["id"]

    def done() -> dict[str, Any] | None:
        task = data(call(secured.stack, GET_TASK, {"id": task_id}, secured.alice))["task"]
        return task if task["status"] == "COMPLETED" else None

    task: dict[str, Any] = wait_until(done, FINISH_SECONDS, "alice's task to complete")
    return task


@pytest.fixture(scope="module")
def alices_task(secured: Secured) -> dict[str, Any]:
    return finished_task(secured)


def seen_by(secured: Secured, key: str | None, task: dict[str, Any]) -> dict[str, Any]:
    """What each operation on the task answers to this key (HTTP statuses for downloads)."""
    stack, task_id = secured.stack, task["id"]
    listed = call(stack, LIST_TASKS, key=key)
    if listed.status_code != 200:
        return {"status": listed.status_code}
    artifact = task["artifacts"][0]["url"]
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return {
        "status": listed.status_code,
        "task": data(call(stack, GET_TASK, {"id": task_id}, key))["task"],
        "listed": task_id in [edge["node"]["id"] for edge in data(listed)["tasks"]["edges"]],
        "cancel": data(call(stack, CANCEL_TASK, {"id": task_id}, key))["cancelTask"]["__typename"],
        "retry": data(call(stack, RETRY_TASK, {"id": task_id}, key))["retryTask"]["__typename"],
        "download": httpx.get(artifact, headers=headers, timeout=15).status_code,
    }


def test_only_the_owner_sees_and_controls_a_task(
    secured: Secured, alices_task: dict[str, Any]
) -> None:
    owner = seen_by(secured, secured.alice, alices_task)
    other = seen_by(secured, secured.bob, alices_task)

    assert owner["task"]["id"] == alices_task["id"]
    assert owner["listed"] is True
    # Alice sees her task: COMPLETED cannot be cancelled or retried.
    assert (owner["cancel"], owner["retry"], owner["download"]) == (
        "TaskStateError",
        "TaskStateError",
        200,
    )
    assert other == {
        "status": 200,
        "task": None,
        "listed": False,
        "cancel": "TaskNotFound",
        "retry": "TaskNotFound",
        "download": 404,
    }


def test_another_callers_task_answers_exactly_as_an_unknown_id(
    secured: Secured, alices_task: dict[str, Any]
) -> None:
    unknown = str(uuid.uuid4())
    stack, bob = secured.stack, secured.bob

    for document, field in ((CANCEL_TASK, "cancelTask"), (RETRY_TASK, "retryTask")):
        foreign = data(call(stack, document, {"id": alices_task["id"]}, bob))[field]
        missing = data(call(stack, document, {"id": unknown}, bob))[field]
        assert foreign["message"].replace(alices_task["id"], unknown) == missing["message"]
        assert foreign["__typename"] == missing["__typename"] == "TaskNotFound"


@pytest.mark.parametrize("who", ["nobody", "revoked", "malformed"])
def test_a_request_without_a_valid_key_is_401_and_stores_nothing(
    secured: Secured, alices_task: dict[str, Any], who: str
) -> None:
    key = {"nobody": None, "revoked": secured.revoked, "malformed": "Basic abc"}[who]
    before = len(data(call(secured.stack, LIST_TASKS, key=secured.alice))["tasks"]["edges"])

    created = call(secured.stack, CREATE_TASK, {"input": {"prompt": "hi"}}, key)
    read = call(secured.stack, GET_TASK, {"id": alices_task["id"]}, key)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    download = httpx.get(alices_task["artifacts"][0]["url"], headers=headers, timeout=15)

    for response in (created, read, download):
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "aitasks keys create" in response.json()["errors"][0]["message"]
    after = len(data(call(secured.stack, LIST_TASKS, key=secured.alice))["tasks"]["edges"])
    assert after == before


def test_idempotency_keys_belong_to_each_caller(secured: Secured) -> None:
    task_input = {"prompt": "Same key, two callers", "idempotencyKey": f"k-{uuid.uuid4()}"}

    first = data(call(secured.stack, CREATE_TASK, {"input": task_input}, secured.alice))
    second = data(call(secured.stack, CREATE_TASK, {"input": task_input}, secured.bob))

    assert first["createTask"]["id"] != second["createTask"]["id"]


async def ws_close_code(stack: Stack, init: dict[str, Any] | None) -> int:
    async with websockets.connect(
        stack.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        message: dict[str, Any] = {"type": "connection_init"}
        if init is not None:
            message["payload"] = init
        await ws.send(json.dumps(message))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest.mark.parametrize(
    "init",
    [None, {}, {"authorization": "Bearer ait_unknown"}, {"Authorization": "nonsense"}],
)
async def test_a_websocket_without_a_valid_key_is_closed_with_4403(
    secured: Secured, init: dict[str, Any] | None
) -> None:
    assert await ws_close_code(secured.stack, init) == 4403


async def test_a_revoked_key_is_closed_with_4403(secured: Secured) -> None:
    init = {"authorization": f"Bearer {secured.revoked}"}

    assert await ws_close_code(secured.stack, init) == 4403


async def subscribe_once(
    stack: Stack, document: str, variables: dict[str, Any], init: dict[str, Any], **headers: str
) -> dict[str, Any]:
    """The first message after subscribing: `next` or `error`."""
    async with websockets.connect(
        stack.ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers=headers,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": document, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return message


async def test_task_status_follows_only_the_callers_own_task(
    secured: Secured, alices_task: dict[str, Any]
) -> None:
    variables = {"id": alices_task["id"]}
    stack = secured.stack

    owner = await subscribe_once(stack, TASK_STATUS, variables, {"authorization": secured.alice})
    other = await subscribe_once(stack, TASK_STATUS, variables, {"apiKey": secured.bob})

    assert owner["type"] == "next"
    assert owner["payload"]["data"]["taskStatus"]["task"]["id"] == alices_task["id"]
    assert other["type"] in ("next", "error")
    assert "No task with id" in json.dumps(other["payload"])


async def test_the_dashboard_feed_shows_only_the_callers_tasks(secured: Secured) -> None:
    stack = secured.stack
    seen: list[str] = []
    async with websockets.connect(
        stack.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"apiKey": secured.bob}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": TASK_UPDATES, "variables": {}}
        await ws.send(json.dumps({"id": "feed", "type": "subscribe", "payload": payload}))
        alices = data(call(stack, CREATE_TASK, {"input": {"prompt": "Alice's"}}, secured.alice))
        bobs = data(call(stack, CREATE_TASK, {"input": {"prompt": "Bob's"}}, secured.bob))
        bobs_id = bobs["createTask"]["id"]
        async with asyncio.timeout(FINISH_SECONDS):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] != "next":
                    continue
                update = message["payload"]["data"]["taskUpdates"]
                seen.append(update["task"]["id"])
                if update["task"]["id"] == bobs_id and update["status"] == "COMPLETED":
                    break

    assert alices["createTask"]["id"] not in seen
    assert bobs_id in seen


def test_a_login_posted_from_another_site_is_refused(secured: Secured) -> None:
    response = httpx.post(
        f"{secured.stack.api_url}/login",
        data={"key": secured.alice},
        headers={"origin": "https://evil.example"},
    )

    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_authentication_cannot_be_off_in_production() -> None:
    settings = Settings(_env_file=None, env="production", auth=False)  # type: ignore[call-arg]

    with pytest.raises(ConfigurationError, match="AITASKS_AUTH=off is allowed only in development"):
        settings.check()


def test_the_login_page_refuses_an_unknown_key(secured: Secured) -> None:
    page = httpx.get(f"{secured.stack.api_url}/login")
    refused = httpx.post(f"{secured.stack.api_url}/login", data={"key": secured.revoked})

    assert page.status_code == 200 and 'name="key"' in page.text
    assert refused.status_code == 401
    assert "unknown or revoked" in refused.text
    assert "set-cookie" not in refused.headers


async def closed_with(ws: Any) -> int:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def connect(stack: Stack) -> Any:
    return websockets.connect(stack.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")])


async def test_a_websocket_that_never_says_connection_init_is_closed_with_4408(
    secured: Secured,
) -> None:
    async with connect(secured.stack) as ws:
        assert await closed_with(ws) == 4408


async def test_subscribing_before_the_ack_is_closed_with_4401(secured: Secured) -> None:
    async with connect(secured.stack) as ws:
        payload = {"query": TASK_UPDATES, "variables": {}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        assert await closed_with(ws) == 4401


async def test_a_second_connection_init_is_closed_with_4429(secured: Secured) -> None:
    init = json.dumps({"type": "connection_init", "payload": {"apiKey": secured.alice}})
    async with connect(secured.stack) as ws:
        await ws.send(init)
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(init)
        assert await closed_with(ws) == 4429


async def test_subscriptions_past_the_limit_of_a_connection_are_refused(
    secured: Secured,
) -> None:
    async with connect(secured.stack) as ws:
        init = {"type": "connection_init", "payload": {"apiKey": secured.alice}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": TASK_UPDATES, "variables": {}}
        for index in range(SUBSCRIPTIONS_MAX + 1):
            message = {"id": str(index), "type": "subscribe", "payload": payload}
            await ws.send(json.dumps(message))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert refused["type"] == "error" and refused["id"] == str(SUBSCRIPTIONS_MAX)
    assert "Subscription limit reached" in refused["payload"][0]["message"]


async def test_websockets_past_the_limit_of_a_key_are_closed_with_4403(
    secured: Secured,
) -> None:
    key = new_key(secured.stack, "dave")
    init = json.dumps({"type": "connection_init", "payload": {"apiKey": key}})
    async with connect(secured.stack) as first, connect(secured.stack) as second:
        for ws in (first, second):
            await ws.send(init)
            assert json.loads(await ws.recv())["type"] == "connection_ack"
        assert await ws_close_code(secured.stack, {"apiKey": key}) == 4403
    # Both closed: the key may connect again.
    async with connect(secured.stack) as again:
        await again.send(init)
        assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "connection_ack"


@pytest.mark.parametrize("query_string", ["%71uery={__typename}", "query={__typename}", "x=1"])
def test_a_get_with_any_query_parameter_needs_a_key_even_from_a_browser(
    secured: Secured, query_string: str
) -> None:
    response = httpx.get(
        f"{secured.stack.graphql_url}?{query_string}", headers={"accept": "text/html"}
    )

    assert response.status_code == 401
    assert "__typename" not in response.text


async def subscribed_feed(stack: Stack, key: str) -> Any:
    """An open socket of `key`'s, acknowledged, with the dashboard feed subscribed."""
    ws = await connect(stack).__aenter__()
    await ws.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    payload = {"query": TASK_UPDATES, "variables": {}}
    await ws.send(json.dumps({"id": "feed", "type": "subscribe", "payload": payload}))
    return ws


def revoke(stack: Stack, name: str) -> None:
    listed = aitasks(stack, "keys", "list").stdout
    key_id = next(line.split()[0] for line in listed.splitlines() if name in line.split())
    aitasks(stack, "keys", "revoke", key_id)


async def test_a_key_revoked_while_its_socket_is_open_closes_it_with_4403(
    secured: Secured,
) -> None:
    name = f"erin-{uuid.uuid4().hex[:8]}"
    key = new_key(secured.stack, name)
    ws = await subscribed_feed(secured.stack, key)
    try:
        revoke(secured.stack, name)
        # Nothing more is sent on the socket: the periodic re-check alone must close it.
        assert await closed_with(ws) == 4403
    finally:
        await ws.close()


async def test_an_operation_on_the_socket_of_a_revoked_key_is_refused_with_4403(
    secured: Secured,
) -> None:
    name = f"frank-{uuid.uuid4().hex[:8]}"
    key = new_key(secured.stack, name)
    async with connect(secured.stack) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        revoke(secured.stack, name)
        payload = {"query": CREATE_TASK, "variables": {"input": {"prompt": "after revoke"}}}
        await ws.send(json.dumps({"id": "late", "type": "subscribe", "payload": payload}))
        messages: list[dict[str, Any]] = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert not any(message.get("type") == "next" for message in messages), messages


# A small key cache, so that a flood of made-up keys overfills it many times.
CACHE_MAX_KEYS = 20


async def _flood(url: str, keys: int) -> list[httpx.Response]:
    """One request for each of `keys` made-up keys, all at once."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    url,
                    json={"query": "{ __typename }"},
                    headers={"authorization": f"Bearer ait_{uuid.uuid4().hex}"},
                )
                for _ in range(keys)
            )
        )


def test_a_flood_of_made_up_keys_does_not_push_out_a_known_one(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        AITASKS_AUTH="on",
        AITASKS_AUTH_CACHE_SECONDS="600",
        AITASKS_AUTH_CACHE_MAX_KEYS=str(CACHE_MAX_KEYS),
    )
    stack.start_api()
    name = f"gina-{uuid.uuid4().hex[:8]}"
    key = new_key(stack, name)
    assert call(stack, "{ __typename }", key=key).status_code == 200

    try:
        flood = asyncio.run(_flood(stack.graphql_url, CACHE_MAX_KEYS * 5))
        # Revoked now, but remembered as valid for the cache's 600 s: still served,
        # which shows the flood left it in the cache (a cache emptied by the flood
        # would ask the database and refuse it).
        revoke(stack, name)
        after = call(stack, "{ __typename }", key=key)
    finally:
        # Each stack holds PostgreSQL connections until stopped.
        stack.terminate()
        stack.wait_stopped()

    assert {response.status_code for response in flood} == {401}
    assert after.status_code == 200
