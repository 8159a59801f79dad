"""A lean WebSocket protocol for uvicorn (`ws=` option): ASGI over RFC 6455, small at rest.

Most WebSockets here sit idle for hours holding one subscription, and the API's memory
per subscription is what limits how many one process serves. uvicorn's own protocols
keep, per socket, an asyncio.Queue, an Event, timers for keepalive pings and buffers for
messages in progress; this one keeps a slotted object and nothing else while idle. Frames
are websockets' (its sans-io `Protocol` parses them, with masking, control frames, size
limits and the close handshake; `Frame` serialises them), but a parser exists only while
a frame, a fragmented message or the closing handshake is in progress, and a socket is
idle almost all its life. No queue until a message waits, no timer per socket (one sweep
per process pings quiet sockets), no task beyond the ASGI app's own.

Bounds come from uvicorn's config: `ws_max_size` (a message, fragments included),
`ws_max_queue` (messages received and not yet read by the app, past which reading
pauses), `ws_ping_interval` and `ws_ping_timeout`. Per-message compression is never
negotiated. uvicorn calls `shutdown()` on every connection when it stops: an open socket
is then closed with 1001 (going away), which makes clients reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from http import HTTPStatus
from typing import Any, ClassVar, cast
from urllib.parse import unquote

from uvicorn import Config
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from graphql_app.ws import handshake as ws_handshake
from graphql_app.ws.handshake import Handshake, HandshakeRefused
from schema.internals import (
    ServerState,
    close_received,
    close_sent,
    frames_failed,
    frames_idle,
    loaded_app,
)

logger = logging.getLogger("uvicorn.error")

# A request head longer than this is refused: uvicorn's parser has accepted it, and
# the longest real handshake (cookies included) is a few kilobytes.
HANDSHAKE_MAX_BYTES = 64 * 1024
# After sending a close frame, how long the client has to answer with its own before
# the connection is dropped (RFC 6455 section 7.1.1 leaves the wait to the server).
CLOSE_TIMEOUT_SECONDS = 10.0
# A keepalive ping's payload; any frame from the client counts as its answer.
PING_PAYLOAD = b"aitasks"
# Sent with 1001 (going away) when the server stops, by this protocol and by the app.
SHUTDOWN_REASON = "server shutting down"

# Where a socket is: reading the request head, waiting for the app's accept, sending
# the app's HTTP answer instead (the denial response), open, closing, closed.
HEAD, CONNECTING, RESPONSE, OPEN, CLOSING, CLOSED = range(6)


class ClientDisconnected(OSError):
    """`send` on a WebSocket that is closed or closing (ASGI asks for an OSError)."""


class _Server:
    """What every socket of one uvicorn server shares: one per ServerState."""

    __slots__ = ("app", "config", "connections", "default_headers", "keepalive", "tasks")

    _of: ClassVar[weakref.WeakKeyDictionary[ServerState, _Server]] = weakref.WeakKeyDictionary()

    def __init__(self, config: Config, server_state: ServerState) -> None:
        self.config = config
        self.app = loaded_app(config)
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.default_headers = server_state.default_headers
        self.keepalive: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, config: Config, server_state: ServerState) -> _Server:
        server = cls._of.get(server_state)
        if server is None:
            server = cls._of[server_state] = cls(config, server_state)
        return server

    def watch(self) -> None:
        """Start the keepalive sweep if it is not running and pings are on."""
        interval = self.config.ws_ping_interval
        if self.keepalive is None and interval:
            self.keepalive = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Ping every socket quiet for a ping interval; fail those quiet since a ping for
        the ping timeout. One timer per process instead of one per socket."""
        self.keepalive = None
        now = asyncio.get_running_loop().time()
        interval = self.config.ws_ping_interval or 0.0
        timeout = self.config.ws_ping_timeout
        sockets = [c for c in self.connections if isinstance(c, LeanWebSocket)]
        for websocket in sockets:
            websocket.keep_alive(now, interval, timeout)
        if sockets:
            self.watch()


class LeanWebSocket(asyncio.Protocol):
    """One WebSocket, from the upgrade request uvicorn hands over to the closed socket."""

    __slots__ = (
        "_app_state",
        "_disconnect",
        "_drain",
        "_fragments",
        "_handshake",
        "_heard_at",
        "_inbox",
        "_pinged_at",
        "_reading_paused",
        "_received",
        "_server",
        "_state",
        "_timer",
        "_transport",
        "_waiter",
        "_ws",
    )

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any]
    ) -> None:
        self._server = _Server.of(config, server_state)
        self._app_state = app_state
        self._state = HEAD
        self._transport: asyncio.Transport | None = None
        self._received = b""  # the request head, then anything sent before the accept
        self._handshake: Handshake | None = None
        # The frame parser, while something is in progress (see the module's docstring).
        self._ws: Protocol | None = None
        # Messages for the app that it has not asked for yet; None when there are none.
        self._inbox: list[dict[str, Any]] | None = None
        self._waiter: asyncio.Future[dict[str, Any]] | None = None
        self._disconnect: dict[str, Any] | None = None
        # A fragmented message being received: its opcode's frame, then its parts.
        self._fragments: list[Any] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._heard_at = 0.0
        self._pinged_at = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        self._server.watch()

    def data_received(self, data: bytes) -> None:
        if self._state == HEAD:
            self._receive_head(data)
        elif self._state == CONNECTING:
            # A client may not send frames before the 101; keep them until the accept.
            self._received += data
            if len(self._received) > self._server.config.ws_max_size:
                self._refuse(HTTPStatus.BAD_REQUEST)
        elif self._reads_frames():
            self._heard_at = asyncio.get_running_loop().time()
            self._pinged_at = 0.0
            self._frames().receive_data(data)
            self._handle_events()

    def eof_received(self) -> bool | None:
        if self._reads_frames():
            self._frames().receive_eof()
            self._handle_events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._state = CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        close = close_received(self._ws) if self._ws is not None else None
        self._disconnected(
            close.code if close is not None else CloseCode.ABNORMAL_CLOSURE,
            close.reason if close is not None else "",
        )
        self._resume_senders()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._resume_senders()

    # uvicorn

    def shutdown(self) -> None:
        """The server is stopping: close with 1001 so that clients go elsewhere."""
        if self._state == CONNECTING:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE)
        elif self._state == OPEN:
            self._close(CloseCode.GOING_AWAY, SHUTDOWN_REASON)
        elif self._state in (HEAD, RESPONSE):
            self._close_transport()

    def keep_alive(self, now: float, interval: float, timeout: float | None) -> None:
        """Called by the keepalive sweep; see `_Server._sweep`."""
        if self._state != OPEN:
            return
        if self._pinged_at:
            if timeout is not None and now - self._pinged_at >= timeout:
                self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        elif now - self._heard_at >= interval:
            self._pinged_at = now
            self._send_frame(Opcode.PING, PING_PAYLOAD)

    # The ASGI app's side

    async def receive(self) -> dict[str, Any]:
        inbox = self._inbox
        if inbox:
            message = inbox.pop(0)
            if not inbox:
                self._inbox = None
                self._resume_reading()
            return message
        if self._disconnect is not None:
            return self._disconnect
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._inbox = [waiter.result(), *(self._inbox or ())]
            raise
        finally:
            self._waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self._state == CONNECTING:
            self._send_before_accept(kind, message)
        elif self._state == RESPONSE and kind == "websocket.http.response.body":
            self._send_body(message)
        elif self._state == OPEN and kind == "websocket.send":
            self._send_data(message)
        elif self._state == OPEN and kind == "websocket.close":
            self._close(
                message.get("code") or CloseCode.NORMAL_CLOSURE, message.get("reason") or ""
            )
        elif self._state in (CLOSING, CLOSED):
            raise ClientDisconnected(f"the WebSocket is closed; {kind!r} not sent")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")
        if self._drain is not None:
            # Shielded: one sender cancelled must not cancel the wait of the others.
            await asyncio.shield(self._drain)

    def _send_before_accept(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._refuse(HTTPStatus.FORBIDDEN)
        elif kind == "websocket.http.response.start":
            headers = [*message.get("headers", ()), *self._server.default_headers]
            self._write(ws_handshake.response_head(message["status"], headers))
            self._state = RESPONSE
        else:
            raise RuntimeError(f"expected websocket.accept or websocket.close, got {kind!r}")

    def _send_body(self, message: dict[str, Any]) -> None:
        self._write(message.get("body", b""))
        if not message.get("more_body", False):
            self._close_transport()

    def _send_data(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if text is not None:
            self._send_frame(Opcode.TEXT, text.encode())
        elif message.get("bytes") is not None:
            self._send_frame(Opcode.BINARY, message["bytes"])
        else:
            raise RuntimeError("websocket.send needs `text` or `bytes`")

    def _send_frame(self, opcode: Opcode, data: bytes) -> None:
        """A whole message or a ping, on an open socket. With no parser in progress
        there is no state for it to change: the frame is serialised as it would."""
        if self._ws is None:
            self._write(Frame(opcode, data).serialize(mask=False, extensions=[]))
            return
        if opcode is Opcode.PING:
            self._ws.send_ping(data)
        elif opcode is Opcode.TEXT:
            self._ws.send_text(data)
        else:
            self._ws.send_binary(data)
        self._flush()

    # The handshake

    def _receive_head(self, data: bytes) -> None:
        self._received += data
        end = self._received.find(ws_handshake.HEAD_END)
        if end < 0:
            if len(self._received) > HANDSHAKE_MAX_BYTES:
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            return
        head, self._received = self._received[:end], self._received[end + 4 :]
        try:
            self._handshake = ws_handshake.parse(head)
        except HandshakeRefused as refused:
            self._write(refused.response)
            self._close_transport()
            return
        self._state = CONNECTING
        self._inbox = [{"type": "websocket.connect"}]
        self._start_app(self._scope(self._handshake))

    def _scope(self, handshake: Handshake) -> dict[str, Any]:
        assert self._transport is not None
        transport, root_path = self._transport, self._server.config.root_path
        return {
            "type": "websocket",
            "asgi": {"version": self._server.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") else "ws",
            "server": _address(transport.get_extra_info("sockname")),
            "client": _address(transport.get_extra_info("peername")),
            "root_path": root_path,
            "path": root_path + unquote(handshake.path.decode("latin-1")),
            "raw_path": root_path.encode() + handshake.path,
            "query_string": handshake.query_string,
            "headers": handshake.headers,
            "subprotocols": handshake.subprotocols,
            "state": self._app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }

    def _accept(self, message: dict[str, Any]) -> None:
        assert self._handshake is not None
        headers = [*message.get("headers", ()), *self._server.default_headers]
        self._write(
            ws_handshake.switching_protocols(self._handshake, message.get("subprotocol"), headers)
        )
        self._handshake = None
        self._state = OPEN
        self._heard_at = asyncio.get_running_loop().time()
        early, self._received = self._received, b""
        if early:
            self.data_received(early)

    def _refuse(self, status: HTTPStatus) -> None:
        """Answer the upgrade request with an HTTP error instead of a WebSocket."""
        headers = [*self._server.default_headers, (b"content-type", b"text/plain")]
        self._write(ws_handshake.response(status, headers, status.phrase.encode()))
        self._close_transport()
        self._disconnected(CloseCode.ABNORMAL_CLOSURE, "")

    # The app's task

    def _start_app(self, scope: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._run_app(scope))
        self._server.tasks.add(task)
        task.add_done_callback(self._server.tasks.discard)

    async def _run_app(self, scope: dict[str, Any]) -> None:
        try:
            await self._server.app(scope, self.receive, self.send)
        except Exception:
            logger.exception("Exception in ASGI application")
            self._end(CloseCode.INTERNAL_ERROR)
        except BaseException:
            # Cancelled: uvicorn's graceful shutdown ran out. The socket goes with it.
            self._end(CloseCode.GOING_AWAY)
            raise
        else:
            self._end(CloseCode.NORMAL_CLOSURE)

    def _end(self, code: int) -> None:
        """The app returned: a socket it left open is closed, a request it never
        answered gets a 500 (the ASGI spec's rule)."""
        if self._state == CONNECTING:
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR)
        elif self._state == OPEN:
            self._close(code, "")
        elif self._state == RESPONSE:
            self._close_transport()

    # Frames

    def _reads_frames(self) -> bool:
        """Open, or closing with the closing handshake under way."""
        return self._state == OPEN or (self._state == CLOSING and self._ws is not None)

    def _frames(self) -> Protocol:
        if self._ws is None:
            self._ws = Protocol(
                Side.SERVER, max_size=self._server.config.ws_max_size, logger=logger
            )
        return self._ws

    def _handle_events(self) -> None:
        assert self._ws is not None
        for event in self._ws.events_received():
            if isinstance(event, Frame):  # a server's Protocol makes no other events
                self._handle_frame(event)
        if frames_failed(self._ws) or close_received(self._ws) is not None:
            self._state = CLOSING
            close = close_received(self._ws) or close_sent(self._ws)
            self._disconnected(
                close.code if close is not None else CloseCode.ABNORMAL_CLOSURE,
                close.reason if close is not None else "",
            )
        self._flush()
        self._drop_idle_parser()

    def _drop_idle_parser(self) -> None:
        ws = self._ws
        if ws is not None and self._state == OPEN and ws.state is State.OPEN and frames_idle(ws):
            self._ws = None

    def _handle_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if self._state != OPEN:
            return  # after a close frame either way, data is no longer read
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode, frame.data)
            else:
                self._fragments = [opcode, frame.data]
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(frame.data)
            if frame.fin:
                opcode, *parts = self._fragments
                self._fragments = None
                self._message(opcode, b"".join(parts))

    def _message(self, opcode: Opcode, data: bytes | bytearray | memoryview) -> None:
        if opcode is Opcode.BINARY:
            self._deliver({"type": "websocket.receive", "bytes": bytes(data)})
            return
        try:
            text = str(data, "utf-8")
        except UnicodeDecodeError:
            self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
            return
        self._deliver({"type": "websocket.receive", "text": text})

    def _deliver(self, message: dict[str, Any]) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._inbox:
            waiter.set_result(message)
            return
        if self._inbox is None:
            self._inbox = []
        self._inbox.append(message)
        if len(self._inbox) >= self._server.config.ws_max_queue and not self._reading_paused:
            # The app is slower than the client: let TCP push back instead of buffering.
            self._reading_paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._state not in (CLOSING, CLOSED):
            self._reading_paused = False
            if self._transport is not None:
                self._transport.resume_reading()

    def _disconnected(self, code: int, reason: str) -> None:
        """Tell the app, once, that the socket is gone."""
        if self._disconnect is not None:
            return
        self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._inbox:
            waiter.set_result(self._disconnect)

    # Closing

    def _close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the client has a while to answer it."""
        self._frames().send_close(code, reason)
        self._state = CLOSING
        self._flush()
        if self._timer is None and self._transport is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(CLOSE_TIMEOUT_SECONDS, self._close_transport)

    def _fail(self, code: int, reason: str) -> None:
        self._frames().fail(code, reason)
        self._state = CLOSING
        self._disconnected(code, reason)
        self._flush()

    def _flush(self) -> None:
        """Write what the frame layer has to send; an empty chunk means close the TCP
        connection (the closing handshake is done, or the connection failed)."""
        if self._ws is None:
            return
        for data in self._ws.data_to_send():
            if data:
                self._write(data)
            else:
                self._close_transport()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close_transport(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        if self._state != CLOSED:
            self._state = CLOSING

    def _resume_senders(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None
