"""A small graphql-transport-ws client on the `websockets` library.

gql's client costs too much per connection to open ten thousand of them from one process;
this one speaks just the protocol: connection_init / connection_ack, subscribe, next,
error, complete, and pong to the server's ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Protocol

from websockets import ConnectionClosed, Subprotocol
from websockets.asyncio.client import ClientConnection, connect

SUBPROTOCOL = Subprotocol("graphql-transport-ws")
# A close handshake that takes longer than this is cut: the run is over anyway.
CLOSE_TIMEOUT_SECONDS = 2.0
PONG = json.dumps({"type": "pong"})

# What the README shows a client following a task asks for.
TASK_STATUS = """
subscription Follow($id: ID!, $after: Int) {
  taskStatus(id: $id, after: $after) {
    sequence status progress delta task { id result error finishedAt }
  }
}
"""


class ProtocolError(Exception):
    """The server did not answer as graphql-transport-ws says."""


class Operations(Protocol):
    """Where a connection hands what the server sends for its operations."""

    def on_next(self, operation_id: str, payload: dict[str, Any], received: float) -> None: ...

    def on_error(self, operation_id: str, payload: Any) -> None: ...

    def on_complete(self, operation_id: str) -> None: ...


class GraphQLSocket:
    """One WebSocket carrying any number of operations, each with its own id."""

    def __init__(self, socket: ClientConnection, operations: Operations) -> None:
        self._socket = socket
        self._operations = operations
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, operations: Operations, open_seconds: float) -> GraphQLSocket:
        socket = await connect(
            url,
            subprotocols=[SUBPROTOCOL],
            compression=None,  # as the API (`ws_per_message_deflate=False`)
            proxy=None,  # straight to the API on 127.0.0.1, whatever the environment says
            ping_interval=None,  # the server pings; the library answers
            open_timeout=open_seconds,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
        )
        try:
            await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            reply = json.loads(await asyncio.wait_for(socket.recv(), open_seconds))
        except BaseException:
            await socket.close()
            raise
        if reply.get("type") != "connection_ack":
            await socket.close()
            raise ProtocolError(f"expected connection_ack, got {reply!r}")
        connection = cls(socket, operations)
        connection._reader = asyncio.create_task(connection._read())
        return connection

    async def subscribe(self, operation_id: str, query: str, variables: dict[str, Any]) -> None:
        message = {
            "id": operation_id,
            "type": "subscribe",
            "payload": {"query": query, "variables": variables},
        }
        await self._socket.send(json.dumps(message))

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self._socket:
                received = time.time()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    self._operations.on_next(message["id"], message["payload"], received)
                elif kind == "ping":
                    await self._socket.send(PONG)
                elif kind == "error":
                    self._operations.on_error(message["id"], message.get("payload"))
                elif kind == "complete":
                    self._operations.on_complete(message["id"])

    async def close(self) -> None:
        await self._socket.close()
        if self._reader is not None:
            await self._reader
