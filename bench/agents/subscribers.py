"""Load generator: `taskStatus` subscriptions, many per process, one or more per socket.

Parameters: `url` (ws://), `task_ids` (subscription k follows task_ids[k]),
`per_connection` (subscriptions sharing one socket), `concurrency` (sockets being set up
at once), `setup_seconds`.

Reports `ready` once every subscription has had its first update (the task as it is), or
when `setup_seconds` ran out. Then, per command: `collect` replies `receipts`, the
[subscription, sequence, received] of every later update since the last collect, once
`expect` of them arrived or after `wait_seconds`; `close` closes every socket and replies
`closed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from websockets import InvalidHandshake

from bench.agents.channel import Channel, run_agent
from bench.wsclient import TASK_STATUS, GraphQLSocket, ProtocolError

# Error texts kept for the report; the rest are only counted.
ERROR_SAMPLES = 5
CLOSE_CONCURRENCY = 200


class Follows:
    """What the subscriptions have received."""

    def __init__(self, count: int, per_connection: int) -> None:
        self.per_connection = per_connection
        self.first: list[float | None] = [None] * count
        self.served = 0
        self.receipts: list[tuple[int, int, float]] = []
        self.errors: list[str] = []
        self.completed = 0
        self._unserved = [
            min(per_connection, count - start) for start in range(0, count, per_connection)
        ]
        self._socket_served = [asyncio.Event() for _ in self._unserved]
        self._wanted: int | None = None
        self._enough = asyncio.Event()

    def on_next(self, operation_id: str, payload: dict[str, Any], received: float) -> None:
        index = int(operation_id)
        data = payload.get("data")
        if not data:
            self.on_error(operation_id, payload.get("errors"))
            return
        if self.first[index] is None:
            self.first[index] = received
            self.served += 1
            self._mark_served(index)
            return
        self.receipts.append((index, data["taskStatus"]["sequence"], received))
        if self._wanted is not None and len(self.receipts) >= self._wanted:
            self._enough.set()

    def _mark_served(self, index: int) -> None:
        socket = index // self.per_connection
        self._unserved[socket] -= 1
        if not self._unserved[socket]:
            self._socket_served[socket].set()

    def on_error(self, operation_id: str, payload: Any) -> None:
        self.errors.append(f"{operation_id}: {payload}")
        if self.first[int(operation_id)] is None:
            self._mark_served(int(operation_id))

    def on_complete(self, operation_id: str) -> None:
        self.completed += 1

    async def socket_served(self, socket: int) -> None:
        await self._socket_served[socket].wait()

    async def collect(self, expect: int, wait_seconds: float) -> list[tuple[int, int, float]]:
        self._wanted = expect
        if len(self.receipts) < expect:
            self._enough.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enough.wait(), wait_seconds)
        self._wanted = None
        receipts, self.receipts = self.receipts, []
        return receipts


async def _open_socket(
    params: dict[str, Any], follows: Follows, socket: int, sockets: list[GraphQLSocket]
) -> None:
    task_ids: list[str] = params["task_ids"]
    per_connection: int = params["per_connection"]
    start = socket * per_connection
    try:
        connection = await GraphQLSocket.open(params["url"], follows, params["setup_seconds"])
        sockets.append(connection)
        for index in range(start, min(start + per_connection, len(task_ids))):
            await connection.subscribe(str(index), TASK_STATUS, {"id": task_ids[index]})
        await follows.socket_served(socket)
    except (OSError, TimeoutError, InvalidHandshake, ProtocolError) as error:
        follows.errors.append(f"socket {socket}: {error!r}")


async def _open_all(params: dict[str, Any], follows: Follows, sockets: list[GraphQLSocket]) -> None:
    gate = asyncio.Semaphore(params["concurrency"])
    count = -(-len(params["task_ids"]) // params["per_connection"])

    async def open_gated(socket: int) -> None:
        # A socket holds its place until its subscriptions are served, which bounds the
        # work waiting in the API as a browser's reconnect storm would not.
        async with gate:
            await _open_socket(params, follows, socket, sockets)

    await asyncio.gather(*(open_gated(socket) for socket in range(count)))


async def _close_all(sockets: list[GraphQLSocket]) -> None:
    gate = asyncio.Semaphore(CLOSE_CONCURRENCY)

    async def close(socket: GraphQLSocket) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await socket.close()

    await asyncio.gather(*(close(socket) for socket in sockets))


async def main(channel: Channel, params: dict[str, Any]) -> None:
    follows = Follows(len(params["task_ids"]), params["per_connection"])
    sockets: list[GraphQLSocket] = []
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_open_all(params, follows, sockets), params["setup_seconds"])
    channel.send(
        "ready",
        subscriptions=len(follows.first),
        served=follows.served,
        sockets=len(sockets),
        errors=len(follows.errors),
        error_samples=follows.errors[:ERROR_SAMPLES],
        seconds=time.monotonic() - started,
    )
    while (command := await channel.receive()) is not None:
        if command["command"] == "collect":
            receipts = await follows.collect(command["expect"], command["wait_seconds"])
            channel.send("receipts", receipts=receipts, errors=len(follows.errors))
        elif command["command"] == "close":
            await _close_all(sockets)
            channel.send("closed", completed=follows.completed)
            return
    await _close_all(sockets)


if __name__ == "__main__":
    run_agent(main)
