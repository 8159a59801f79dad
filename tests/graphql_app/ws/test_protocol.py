"""The lean WebSocket protocol, served by a real uvicorn to real clients: the websockets
client for what a client library does, a bare TCP socket for what one should not."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets
from websockets import Subprotocol
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fixtures.stack import wait_until
from tests.fixtures.ws_server import (
    FLOOD_MESSAGE_BYTES,
    FLOOD_MESSAGES,
    SLOW_READ_SECONDS,
    WsServer,
    serve_lean,
)

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 10.0
MAX_SIZE = 4096
PING_SECONDS = 0.2
OPCODE_CLOSE, OPCODE_PING = 0x8, 0x9


@pytest.fixture
def lean() -> Iterator[WsServer]:
    with serve_lean(ws_max_size=MAX_SIZE, ws_max_queue=4) as server:
        yield server


async def _until(condition: Callable[[], Any], what: str) -> None:
    """wait_until in a thread: the server's thread sets what it waits for, and this
    test's loop must run meanwhile (to close a socket, say)."""
    await asyncio.to_thread(wait_until, condition, WAIT_SECONDS, what)


async def _closed_by_server(ws: websockets.ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), WAIT_SECONDS)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _raw_upgrade(
    port: int, path: str = "/echo", version: str = "13", key: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A handshake written by hand; the answer's head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Version: {version}",
        *([f"Sec-WebSocket-Key: {key}"] if key else []),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_SECONDS)
    return reader, writer, head


async def _server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One small unmasked frame, as a server sends them."""
    first, second = await asyncio.wait_for(reader.readexactly(2), WAIT_SECONDS)
    return first & 0x0F, await reader.readexactly(second & 0x7F)


async def test_messages_come_back_as_sent_on_the_subprotocol_the_app_chose(
    lean: WsServer,
) -> None:
    offered = [Subprotocol("other"), Subprotocol("graphql-transport-ws")]
    async with websockets.connect(f"{lean.url}/echo", subprotocols=offered) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
        assert ws.subprotocol == "graphql-transport-ws"


async def test_a_fragmented_message_arrives_whole(lean: WsServer) -> None:
    async with websockets.connect(f"{lean.url}/echo") as ws:
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"


async def test_a_message_over_the_size_limit_closes_the_socket_with_1009(
    lean: WsServer,
) -> None:
    async with websockets.connect(f"{lean.url}/echo", max_size=None) as ws:
        await ws.send(["x" * (MAX_SIZE // 2), "x" * MAX_SIZE])
        code, _ = await _closed_by_server(ws)
    assert code == 1009
    await _until(lambda: lean.seen.disconnects, "the app to hear the close")
    assert lean.seen.disconnects[-1]["code"] == 1009


async def test_text_that_is_not_utf8_closes_the_socket_with_1007(lean: WsServer) -> None:
    async with websockets.connect(f"{lean.url}/echo") as ws:
        await ws.send(b"\xff\xfe", text=True)
        code, _ = await _closed_by_server(ws)
    assert code == 1007


async def test_the_apps_own_close_code_and_reason_reach_the_client(lean: WsServer) -> None:
    async with websockets.connect(f"{lean.url}/close-4400") as ws:
        assert await _closed_by_server(ws) == (4400, "bad message")


async def test_the_clients_close_code_reaches_the_app(lean: WsServer) -> None:
    async with websockets.connect(f"{lean.url}/echo") as ws:
        await ws.close(4000, "done here")
    await _until(lambda: lean.seen.disconnects, "the app to hear the close")
    assert lean.seen.disconnects[-1] == {
        "type": "websocket.disconnect",
        "code": 4000,
        "reason": "done here",
    }


async def test_a_dropped_connection_reaches_the_app_as_1006(lean: WsServer) -> None:
    _, writer, head = await _raw_upgrade(lean.port)
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.close()
    await _until(lambda: lean.seen.disconnects, "the app to hear the drop")
    assert lean.seen.disconnects[-1]["code"] == 1006


async def test_closing_before_accepting_answers_the_handshake_with_403(lean: WsServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{lean.url}/refuse")
    assert refused.value.response.status_code == 403


async def test_the_apps_denial_response_is_sent_as_http(lean: WsServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{lean.url}/deny")
    assert refused.value.response.status_code == 401
    assert refused.value.response.body == b"no key"


async def test_an_app_that_fails_before_accepting_answers_500_and_after_closes_1011(
    lean: WsServer,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{lean.url}/crash-before-accept")
    assert refused.value.response.status_code == 500
    async with websockets.connect(f"{lean.url}/crash") as ws:
        code, _ = await _closed_by_server(ws)
    assert code == 1011


@pytest.mark.parametrize(
    ("version", "key", "status"),
    [("8", None, b"426"), ("13", "", b"400"), ("13", "dG9vIHNob3J0", b"400")],
)
async def test_a_bad_handshake_is_refused_with_the_http_status_that_says_why(
    lean: WsServer, version: str, key: str | None, status: bytes
) -> None:
    _, writer, head = await _raw_upgrade(lean.port, version=version, key=key)
    writer.close()
    assert head.split(b" ")[1] == status
    if status == b"426":
        assert b"sec-websocket-version: 13" in head


async def test_the_server_answers_a_ping(lean: WsServer) -> None:
    async with websockets.connect(f"{lean.url}/echo") as ws:
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, WAIT_SECONDS)


async def test_a_client_that_answers_pings_stays_connected() -> None:
    config = {"ws_ping_interval": PING_SECONDS, "ws_ping_timeout": PING_SECONDS}
    with serve_lean(**config) as server:
        async with websockets.connect(f"{server.url}/echo") as ws:
            await asyncio.sleep(PING_SECONDS * 6)
            await ws.send("still here")
            assert await ws.recv() == "still here"


async def test_a_client_that_answers_no_ping_is_closed_with_1011() -> None:
    config = {"ws_ping_interval": PING_SECONDS, "ws_ping_timeout": PING_SECONDS}
    with serve_lean(**config) as server:
        reader, writer, _ = await _raw_upgrade(server.port)
        assert (await _server_frame(reader))[0] == OPCODE_PING
        opcode, payload = await _server_frame(reader)
        writer.close()
    assert opcode == OPCODE_CLOSE
    assert struct.unpack("!H", payload[:2])[0] == 1011


async def test_messages_sent_while_the_app_is_not_reading_all_arrive_in_order(
    lean: WsServer,
) -> None:
    # Many more than the receive queue (4): reading pauses, then resumes.
    async with websockets.connect(f"{lean.url}/slow") as ws:
        for number in range(200):
            await ws.send(str(number))
        await ws.send("last")
        assert await asyncio.wait_for(ws.recv(), WAIT_SECONDS + SLOW_READ_SECONDS) == "got 200"


async def test_an_app_sending_to_a_client_that_does_not_read_waits_for_it(
    lean: WsServer,
) -> None:
    async with websockets.connect(f"{lean.url}/flood", max_size=None, max_queue=1) as ws:
        await asyncio.sleep(SLOW_READ_SECONDS)
        assert lean.seen.flood_sent < FLOOD_MESSAGES
        for _ in range(FLOOD_MESSAGES):
            assert len(await asyncio.wait_for(ws.recv(), WAIT_SECONDS)) == FLOOD_MESSAGE_BYTES
    assert lean.seen.flood_sent == FLOOD_MESSAGES


async def test_stopping_the_server_closes_open_sockets_with_1001() -> None:
    with serve_lean() as server:
        async with websockets.connect(f"{server.url}/echo") as ws:
            server.server.should_exit = True
            code, _ = await _closed_by_server(ws)
    assert code == 1001
