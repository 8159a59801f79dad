"""Load generator: closed-loop HTTP/1.1 clients, each on one keep-alive connection.

A bare asyncio protocol on uvloop rather than httpx: a small fraction of httpx's CPU per
request (the `create` benchmark reports both), and every microsecond the client spends on
a small machine is taken from the server it loads. Each client sends the
same POST again as soon as the answer to the last one has arrived, and times it (send to
last byte).

Parameters: `host`. Command `run` (port, path, body, clients, warmup_seconds, seconds,
expect, and optionally count): opens `clients` connections to `host`:`port`, loads the
server for `warmup_seconds` unmeasured, then for `seconds` measured, and replies `ran`
with the latency in µs of every request that ended in the measured seconds (their count
over `seconds` is the throughput), the requests of the whole run (warm-up included),
and failures: an answer that is not 200 or lacks the bytes `expect` is one. With
`count`, the clients stop once they have sent that many requests in all. `close`
replies `closed`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from bench.agents.channel import Channel, run_agent

HEADER_END = b"\r\n\r\n"
CONTENT_LENGTH = b"\r\ncontent-length:"
OK_STATUS = b"HTTP/1.1 200 "
CONNECT_TIMEOUT_SECONDS = 10.0
# An answer slower than this is a failure: the server is stuck, not slow.
REQUEST_TIMEOUT_SECONDS = 30.0
# Failure texts kept for the report; the rest are only counted.
ERROR_SAMPLES = 3


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time: the answer is the next
    `Content-Length`-framed response in the byte stream."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        end = self._buffer.find(HEADER_END)
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        start = head.find(CONTENT_LENGTH)
        if start < 0:
            self._waiter.set_exception(ValueError("an answer without Content-Length"))
            return
        line_end = head.find(b"\r\n", start + len(CONTENT_LENGTH))
        length = int(head[start + len(CONTENT_LENGTH) : line_end if line_end > 0 else None])
        total = end + len(HEADER_END) + length
        if len(self._buffer) >= total:
            answer = bytes(self._buffer[:total])
            del self._buffer[:total]
            self._waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection closed ({exc})"))

    async def request(self, payload: bytes) -> bytes:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(payload)
        return await asyncio.wait_for(self._waiter, REQUEST_TIMEOUT_SECONDS)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class Load:
    """The counts of one run, shared by its clients."""

    def __init__(
        self, payload: bytes, expect: bytes, measure_from: float, until: float, count: int | None
    ) -> None:
        self.payload = payload
        self.expect = expect
        self.measure_from = measure_from
        self.until = until
        self.latencies_us: list[int] = []
        self.requests = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self._unsent = count

    def _take(self) -> bool:
        """Whether the count allows one more request (and count it)."""
        if self._unsent is None:
            return True
        self._unsent -= 1
        return self._unsent >= 0

    def failed(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(what[:300])

    async def client(self, connection: Connection) -> None:
        clock = time.perf_counter
        while (started := clock()) < self.until and self._take():
            try:
                answer = await connection.request(self.payload)
            except (OSError, ValueError, TimeoutError) as error:
                self.failed(repr(error))
                return
            ended = clock()
            self.requests += 1
            if not answer.startswith(OK_STATUS) or self.expect not in answer:
                self.failed(answer.decode(errors="replace"))
            elif self.measure_from <= ended <= self.until:
                self.latencies_us.append(round((ended - started) * 1e6))


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _, connection = await asyncio.wait_for(
        loop.create_connection(Connection, host, port), CONNECT_TIMEOUT_SECONDS
    )
    return connection


async def run(host: str, command: dict[str, Any]) -> dict[str, Any]:
    port = command["port"]
    payload = request_bytes(host, port, command["path"], command["body"].encode())
    connections = [await _connect(host, port) for _ in range(command["clients"])]
    measure_from = time.perf_counter() + command["warmup_seconds"]
    until = measure_from + command["seconds"]
    load = Load(payload, command["expect"].encode(), measure_from, until, command.get("count"))
    try:
        await asyncio.gather(*(load.client(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    return {
        "latencies_us": load.latencies_us,
        "seconds": command["seconds"],
        "requests": load.requests,
        "errors": load.errors,
        "error_samples": load.error_samples,
    }


async def main(channel: Channel, params: dict[str, Any]) -> None:
    while (command := await channel.receive()) is not None:
        if command["command"] == "run":
            channel.send("ran", **await run(params["host"], command))
        elif command["command"] == "close":
            break
    channel.send("closed")


if __name__ == "__main__":
    run_agent(main)
