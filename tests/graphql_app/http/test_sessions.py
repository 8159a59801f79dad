"""Browser logins: a session id in the cookie (never the key), logout ending it, and
the cookie refused where another site could have used it (CSRF, a foreign WebSocket)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from websockets import Subprotocol

from graphql_app.http.sessions import SESSION_COOKIE
from tests.fixtures.graphql import CREATE_TASK, GET_TASK, TASK_STATUS
from tests.fixtures.keys import aitasks, new_key
from tests.fixtures.stack import Stack

LIST_TASKS = "query List { tasks(first: 5) { edges { node { id } } } }"
PREFLIGHT = {"GraphQL-Require-Preflight": "1"}


@dataclass
class Browser:
    stack: Stack
    key: str
    session_id: str
    task_id: str

    @property
    def cookies(self) -> dict[str, str]:
        return {SESSION_COOKIE: self.session_id}


@pytest.fixture(scope="module")
def secured_stack(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack(AITASKS_AUTH="on", AITASKS_AUTH_CACHE_SECONDS="0")
    stack.start_worker()
    stack.start_api()
    return stack


def log_in(stack: Stack, key: str) -> httpx.Response:
    return httpx.post(f"{stack.api_url}/login", data={"key": key, "next": "/tasks/x"})


@pytest.fixture
def browser(secured_stack: Stack) -> Browser:
    key = new_key(secured_stack, "dana")
    login = log_in(secured_stack, key)
    assert login.status_code == 303, login.text
    created = httpx.post(
        secured_stack.graphql_url,
        json={"query": CREATE_TASK, "variables": {"input": {"prompt": "hello"}}},
        headers={"authorization": f"Bearer {key}"},
    ).json()
    task_id = created["data"]["createTask"]["id"]
    return Browser(secured_stack, key, login.cookies[SESSION_COOKIE], task_id)


def test_login_sets_a_session_cookie_that_is_not_the_key(secured_stack: Stack) -> None:
    key = new_key(secured_stack, "erin")
    login = log_in(secured_stack, key)

    cookie = login.headers["set-cookie"]
    assert login.status_code == 303 and login.headers["location"] == "/tasks/x"
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert key not in cookie and key[4:20] not in cookie


def test_login_returns_only_to_a_page_of_this_site(secured_stack: Stack) -> None:
    key = new_key(secured_stack, "erin")
    login = httpx.post(
        f"{secured_stack.api_url}/login", data={"key": key, "next": "//evil.example/x"}
    )

    assert login.headers["location"] == "/"


def test_the_session_cookie_authenticates_json_requests(browser: Browser) -> None:
    read = httpx.post(
        browser.stack.graphql_url,
        json={"query": GET_TASK, "variables": {"id": browser.task_id}},
        cookies=browser.cookies,
    )

    assert read.json()["data"]["task"]["id"] == browser.task_id


def test_a_cookie_request_a_form_could_send_is_refused(browser: Browser) -> None:
    form = httpx.post(
        browser.stack.graphql_url,
        content=f"query={LIST_TASKS}",
        headers={"content-type": "application/x-www-form-urlencoded"},
        cookies=browser.cookies,
    )
    plain = httpx.post(
        browser.stack.graphql_url,
        content=json.dumps({"query": LIST_TASKS}),
        headers={"content-type": "text/plain"},
        cookies=browser.cookies,
    )
    link = httpx.get(
        browser.stack.graphql_url, params={"query": LIST_TASKS}, cookies=browser.cookies
    )

    for refused in (form, plain, link):
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"]["code"] == "CSRF_REFUSED"


def test_a_cookie_request_with_the_preflight_header_is_served(browser: Browser) -> None:
    response = httpx.get(
        browser.stack.graphql_url,
        params={"query": LIST_TASKS},
        headers=PREFLIGHT,
        cookies=browser.cookies,
    )

    assert response.status_code == 200
    assert response.json()["data"]["tasks"]["edges"][0]["node"]["id"] == browser.task_id


def test_logout_ends_the_session(browser: Browser) -> None:
    logout = httpx.post(
        f"{browser.stack.api_url}/logout", headers=PREFLIGHT, cookies=browser.cookies
    )
    after = httpx.post(
        browser.stack.graphql_url, json={"query": LIST_TASKS}, cookies=browser.cookies
    )

    assert logout.status_code == 204
    assert f'{SESSION_COOKIE}=""' in logout.headers["set-cookie"]
    assert after.status_code == 401


def test_logout_from_another_site_is_refused(browser: Browser) -> None:
    refused = httpx.post(f"{browser.stack.api_url}/logout", cookies=browser.cookies)
    still = httpx.post(
        browser.stack.graphql_url, json={"query": LIST_TASKS}, cookies=browser.cookies
    )

    assert refused.status_code == 403
    assert still.status_code == 200


def test_a_session_ends_when_its_key_is_revoked(browser: Browser) -> None:
    listed = aitasks(browser.stack, "keys", "list").stdout
    key_id = next(line.split()[0] for line in listed.splitlines() if browser.key[:12] in line)
    aitasks(browser.stack, "keys", "revoke", key_id)
    after = httpx.post(
        browser.stack.graphql_url, json={"query": LIST_TASKS}, cookies=browser.cookies
    )

    assert after.status_code == 401


async def first_message(stack: Stack, task_id: str, **headers: str) -> dict[str, Any]:
    """Open a socket with no key in `connection_init` (as a browser page does) and
    subscribe; the first message, or how the socket was refused: at the handshake (an
    HTTP status) or after it (a close code)."""
    try:
        ws = await websockets.connect(
            stack.ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers=headers,
        )
    except websockets.InvalidStatus as refused:
        return {"refused": refused.response.status_code}
    async with ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        try:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        except websockets.ConnectionClosed as closed:
            return {"closed": closed.rcvd.code if closed.rcvd else None}
        payload = {"query": TASK_STATUS, "variables": {"id": task_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return message


def test_a_websocket_with_the_cookie_from_this_site_subscribes(browser: Browser) -> None:
    message = asyncio.run(
        first_message(
            browser.stack,
            browser.task_id,
            Cookie=f"{SESSION_COOKIE}={browser.session_id}",
            Origin=browser.stack.api_url,
        )
    )

    assert message["type"] == "next"


def test_a_websocket_with_the_cookie_from_another_origin_is_refused(browser: Browser) -> None:
    message = asyncio.run(
        first_message(
            browser.stack,
            browser.task_id,
            Cookie=f"{SESSION_COOKIE}={browser.session_id}",
            Origin="https://evil.example",
        )
    )

    assert message in ({"closed": 4403}, {"refused": 403})
