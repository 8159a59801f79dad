"""Property-based fuzzing of the edge, against the real API over HTTP and WebSocket:
whatever body, headers, query string, multipart form or socket message hypothesis makes,
the API answers no 5xx, closes no socket with 1011, shows no exception text or stack
trace, and still serves a normal request afterwards.

`make test` runs a bounded number of examples (under a minute in all); `make fuzz` sets
FUZZ_EXAMPLES much higher. What the long runs tried and found is in docs/fuzzing.md.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.fixtures.keys import new_key
from tests.fixtures.stack import Stack

# Examples per test: a bounded run by default, `make fuzz` passes many more.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
# What a client must never see: a traceback, a file of ours, Python's words for an error.
LEAKS = ("Traceback", 'File "/', "site-packages", "Error(", "object has no attribute")
# Close codes a socket may end with: normal, going away, and graphql-transport-ws's own.
WS_CLOSE_OK = {1000, 1001, 1002, 1007, 1008, 1009, 4400, 4401, 4403, 4408, 4409, 4429}
WS_WAIT_SECONDS = 5.0
# A socket that sends nothing for this long after the last message has answered it.
QUIET_SECONDS = 0.2
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
DOCUMENTS = st.sampled_from(
    [
        "{ __typename }",
        "{ tasks(first: 1) { edges { node { id } } } }",
        "query Q($id: ID!) { task(id: $id) { id status } }",
        'mutation { createTask(input: {prompt: "fuzz"}) { __typename } }',
        "subscription { taskUpdates { sequence } }",
        "{",
        "",
    ]
) | st.text(max_size=80)
# A GraphQL request whose members may each be of the right type or of any other.
REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "query": DOCUMENTS | JSON,
        "variables": st.dictionaries(st.text(max_size=8), JSON, max_size=3) | JSON,
        "operationName": st.sampled_from(["Q", ""]) | JSON,
        "extensions": JSON,
    },
)
DEEP = st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth + "]" * depth)
BODIES = (
    REQUESTS.map(json.dumps).map(str.encode)
    | JSON.map(json.dumps).map(str.encode)
    | DEEP.map(str.encode)
    | st.binary(max_size=200)
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/graphql-response+json",
        "application/graphql",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
    ]
)
ACCEPTS = st.sampled_from(
    [
        "application/json",
        "application/graphql-response+json",
        "application/graphql-response+json, application/json;q=0.9",
        "text/html",
        "text/event-stream",
        "multipart/mixed",
        "*/*",
        "application/json;q=x",
        "",
    ]
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


@pytest.fixture(scope="module")
def fuzzed(make_stack: Callable[..., Stack]) -> Iterator[tuple[Stack, str]]:
    """An API that requires keys, and one key: most requests are made as its caller."""
    # No worker: tasks the fuzzer creates wait PENDING instead of occupying one.
    stack = make_stack(AITASKS_AUTH="on")
    stack.start_api()
    yield stack, new_key(stack, "fuzz")
    # Stopped with the module, not the session: every stack holds PostgreSQL
    # connections, and the suite's stacks together would pass its connection limit.
    stack.terminate()
    stack.wait_stopped()


@pytest.fixture
def client(fuzzed: tuple[Stack, str]) -> Iterator[httpx.Client]:
    stack, _ = fuzzed
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        yield http
    # The server still answers a normal request after everything the test sent.
    assert still_serves(fuzzed)


def still_serves(fuzzed: tuple[Stack, str]) -> bool:
    stack, key = fuzzed
    response = httpx.post(
        stack.graphql_url,
        json={"query": "{ __typename }"},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    return response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert not any(leak in response.text for leak in LEAKS), response.text[:500]


def auth(key: str, use_key: bool) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if use_key else {}


def test_no_http_body_makes_a_5xx_or_shows_exception_text(
    fuzzed: tuple[Stack, str], client: httpx.Client
) -> None:
    _, key = fuzzed

    @FUZZ_SETTINGS
    @given(body=BODIES, content_type=CONTENT_TYPES, accept=ACCEPTS, use_key=st.booleans())
    def run(body: bytes, content_type: str, accept: str, use_key: bool) -> None:
        headers = {"content-type": content_type, "accept": accept, **auth(key, use_key)}
        check_answer(client.post("/graphql", content=body, headers=headers))

    run()


def test_no_header_makes_a_5xx_or_shows_exception_text(
    fuzzed: tuple[Stack, str], client: httpx.Client
) -> None:
    _, key = fuzzed
    names = st.sampled_from(
        [
            "authorization",
            "cookie",
            "accept",
            "content-type",
            "content-length",
            "host",
            "origin",
            "graphql-require-preflight",
            "x-request-id",
            "mcp-session-id",
        ]
    )

    @FUZZ_SETTINGS
    @given(
        headers=st.dictionaries(names, HEADER_TEXT, max_size=4),
        path=st.sampled_from(["/graphql", "/mcp", "/login", "/metrics"]),
    )
    def run(headers: dict[str, str], path: str) -> None:
        if "content-length" in headers:
            headers["content-length"] = str(len(headers["content-length"]))
        body = json.dumps({"query": "{ __typename }"}).encode()
        merged = {"content-type": "application/json", **auth(key, True), **headers}
        merged.pop("content-length", None)
        # httpx refuses to send some headers: nothing reached the server then.
        with contextlib.suppress(httpx.LocalProtocolError):
            check_answer(client.post(path, content=body, headers=merged))

    run()


def test_no_query_string_makes_a_5xx_or_shows_exception_text(
    fuzzed: tuple[Stack, str], client: httpx.Client
) -> None:
    _, key = fuzzed
    values = DOCUMENTS | JSON.map(json.dumps) | st.text(max_size=30)
    params = st.dictionaries(
        st.sampled_from(["query", "variables", "operationName", "extensions", "%71uery", "x"]),
        values,
        max_size=3,
    )

    @FUZZ_SETTINGS
    @given(params=params, accept=ACCEPTS, use_key=st.booleans())
    def run(params: dict[str, str], accept: str, use_key: bool) -> None:
        headers = {"accept": accept, **auth(key, use_key)}
        response = client.get("/graphql", params=params, headers=headers)
        check_answer(response)
        if params and not use_key:
            # Only a bare GET is served without a key (the GraphiQL page).
            assert response.status_code == 401, (params, response.status_code)

    run()


def test_no_multipart_form_makes_a_5xx_or_shows_exception_text(
    fuzzed: tuple[Stack, str], client: httpx.Client
) -> None:
    _, key = fuzzed
    operations = (
        REQUESTS.map(json.dumps)
        | JSON.map(json.dumps)
        | st.just(
            json.dumps(
                {
                    "query": 'mutation($f: Upload) { createTask(input: {prompt: "x", '
                    'kind: IMAGE_PROCESSING, files: [{name: "a.png", upload: $f}]}) '
                    "{ __typename } }",
                    "variables": {"f": None},
                }
            )
        )
    )
    maps = JSON.map(json.dumps) | st.dictionaries(
        st.sampled_from(["0", "1", "x"]),
        st.lists(
            st.sampled_from(
                [
                    "variables.f",
                    "variables.f.0",
                    "variables",
                    "x.y",
                    "variables.input.files.0.upload",
                ]
            )
            | JSON,
            max_size=2,
        ),
        max_size=2,
    ).map(json.dumps)

    @FUZZ_SETTINGS
    @given(
        operations=operations,
        file_map=maps,
        files=st.dictionaries(st.sampled_from(["0", "1", "x"]), st.binary(max_size=64), max_size=2),
        drop=st.sampled_from([None, "operations", "map"]),
    )
    def run(operations: str, file_map: str, files: dict[str, bytes], drop: str | None) -> None:
        form = {"operations": operations, "map": file_map}
        if drop:
            del form[drop]
        response = client.post(
            "/graphql",
            data=form,
            files={name: (f"{name}.png", data, "image/png") for name, data in files.items()}
            or {"none": ("none.txt", b"", "text/plain")},
            headers={"graphql-require-preflight": "1", **auth(key, True)},
        )
        check_answer(response)

    run()


def _open(stack: Stack) -> ClientConnection:
    return connect(
        stack.ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        open_timeout=WS_WAIT_SECONDS,
        close_timeout=WS_WAIT_SECONDS,
    )


def _answers(ws: ClientConnection) -> list[str]:
    """Everything the server sends until it goes quiet for a moment or closes."""
    received: list[str] = []
    try:
        while True:
            message = ws.recv(timeout=QUIET_SECONDS)
            received.append(
                message if isinstance(message, str) else message.decode(errors="replace")
            )
    except TimeoutError:
        pass
    except ConnectionClosed:
        pass
    return received


def _check_socket(ws: ClientConnection, received: list[str]) -> None:
    for text in received:
        assert not any(leak in text for leak in LEAKS), text[:500]
    close = ws.protocol.close_rcvd
    if close is not None:
        assert close.code in WS_CLOSE_OK, (close.code, close.reason)
        assert not any(leak in close.reason for leak in LEAKS), close.reason


WS_MESSAGES = (
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["connection_init", "subscribe", "complete", "ping", "pong", "next", "x"]
            )
            | JSON
        },
        optional={
            "id": st.text(max_size=4) | JSON,
            "payload": REQUESTS | JSON,
        },
    ).map(json.dumps)
    | JSON.map(json.dumps)
    | DEEP
    | st.text(max_size=60)
)


@pytest.mark.parametrize("initialised", [False, True], ids=["before-init", "after-init"])
def test_no_websocket_message_closes_with_1011_or_shows_exception_text(
    fuzzed: tuple[Stack, str], client: httpx.Client, initialised: bool
) -> None:
    stack, key = fuzzed

    @FUZZ_SETTINGS
    @given(messages=st.lists(WS_MESSAGES | st.binary(max_size=40), min_size=1, max_size=3))
    def run(messages: list[str | bytes]) -> None:
        with _open(stack) as ws:
            if initialised:
                ws.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
                assert json.loads(ws.recv(timeout=WS_WAIT_SECONDS))["type"] == "connection_ack"
            for message in messages:
                try:
                    ws.send(message)
                except ConnectionClosed:
                    break
            _check_socket(ws, _answers(ws))

    run()
