"""Load generator and client for the `first_change` benchmark.

Parameters: `http_url`, `ws_url`.

Commands:
- `measure` (count, gap_seconds, timeout_seconds): one task at a time, as a person's
  client does it: send `createTask` over HTTP, subscribe to the new task's `taskStatus`
  on a WebSocket opened beforehand, wait until the task has ended (with `until_text`:
  until its first text), wait `gap_seconds`, next (with `stop_at_miss`, stop after a
  task not claimed within the timeout).
  Replies `measured` with one row per task: [task id, sent, answered, first PROCESSING
  received, first text received, first update of any kind received] (`time.time()`
  seconds; None if never seen).
- `load` (rate): from now on, create `rate` tasks per second on an open-loop schedule
  (a slow answer does not delay the next create), over a pool of keep-alive HTTP/1.1
  connections. Replies `loading` at once.
- `unload`: stop creating; replies `unloaded` with how many were sent, answered (a Task
  created), failed, queued for a free connection, the seconds from the first send to the
  stop, and an error sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.agents.channel import Channel, run_agent
from bench.agents.http_load import HEADER_END, OK_STATUS, Connection, request_bytes
from bench.wsclient import TASK_STATUS, GraphQLSocket

CREATE = (
    'mutation { createTask(input: {prompt: "A first_change benchmark task."}) '
    "{ __typename ... on Task { id } ... on ValidationError { message } } }"
)
OPEN_SECONDS = 10.0
# Enough that a create never waits for a connection at 100/s even when answers take
# 500 ms; the `queued` count says if one did.
LOAD_CONNECTIONS = 64
CREATE_BODY = json.dumps({"query": CREATE}).encode()
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


class Follows:
    """What each subscription saw: its first PROCESSING and its first text."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.processing: dict[str, float] = {}
        self.text: dict[str, float] = {}
        self.ended: dict[str, asyncio.Event] = {}
        self.has_text: dict[str, asyncio.Event] = {}
        self.errors: list[str] = []

    def on_next(self, operation_id: str, payload: dict[str, Any], received: float) -> None:
        update = (payload.get("data") or {}).get("taskStatus")
        if not update:
            self.errors.append(repr(payload)[:300])
            return
        self.first.setdefault(operation_id, received)
        # An update may carry the first text and the claim at once (a task already
        # streaming when the subscription's first update was read).
        if update["status"] != "PENDING":
            self.processing.setdefault(operation_id, received)
        if update.get("delta") or (update.get("task") or {}).get("result"):
            self.text.setdefault(operation_id, received)
            self.has_text[operation_id].set()
        if update["status"] in TERMINAL:
            self.ended[operation_id].set()

    def on_error(self, operation_id: str, payload: Any) -> None:
        self.errors.append(repr(payload)[:300])
        self.on_complete(operation_id)

    def on_complete(self, operation_id: str) -> None:
        self.ended[operation_id].set()
        self.has_text[operation_id].set()


async def _create(client: httpx.AsyncClient, url: str) -> str:
    response = await client.post(url, json={"query": CREATE})
    created = response.json()["data"]["createTask"]
    if created["__typename"] != "Task":
        raise RuntimeError(f"createTask refused: {created}")
    return str(created["id"])


async def _measure(params: dict[str, Any], args: dict[str, Any]) -> list[list[Any]]:
    follows = Follows()
    socket = await GraphQLSocket.open(params["ws_url"], follows, OPEN_SECONDS)
    rows: list[list[Any]] = []
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=args["timeout_seconds"]) as client:
            for number in range(args["count"]):
                operation = str(number)
                follows.ended[operation] = asyncio.Event()
                follows.has_text[operation] = asyncio.Event()
                sent = time.time()
                task_id = await _create(client, params["http_url"])
                answered = time.time()
                await socket.subscribe(operation, TASK_STATUS, {"id": task_id})
                awaited = follows.has_text if args.get("until_text") else follows.ended
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(awaited[operation].wait(), args["timeout_seconds"])
                processing = follows.processing.get(operation)
                text = follows.text.get(operation)
                first = follows.first.get(operation)
                rows.append([task_id, sent, answered, processing, text, first])
                if processing is None and args.get("stop_at_miss"):
                    break  # the queue is behind: every later task would wait as long
                await asyncio.sleep(args["gap_seconds"])
    finally:
        await socket.close()
    if follows.errors:
        raise RuntimeError(f"subscription errors: {follows.errors[:3]}")
    return rows


def _created(answer: bytes) -> bool:
    """Whether an HTTP answer to CREATE is a created Task."""
    body = answer[answer.find(HEADER_END) + len(HEADER_END) :]
    try:
        created = json.loads(body)["data"]["createTask"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(created, dict) and created.get("__typename") == "Task"


class Load:
    """Creates on an open-loop schedule until stopped, over a pool of keep-alive
    HTTP/1.1 connections (bench/agents/http_load.py's bare protocol: httpx's CPU per
    request held the rate below the one asked for on two cores)."""

    def __init__(self, url: str, rate: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.payload = request_bytes(self.host, self.port, parts.path, CREATE_BODY)
        self.rate = rate
        self.sent = 0
        self.answered = 0
        self.failed = 0
        # Creates that found every connection busy and waited for one.
        self.queued = 0
        self.error: str | None = None
        self.started = time.monotonic()
        self.stopped: float | None = None
        self._free: asyncio.Queue[Connection] = asyncio.Queue()
        self._connections: list[Connection] = []
        self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(LOAD_CONNECTIONS):
            _, connection = await asyncio.wait_for(
                loop.create_connection(Connection, self.host, self.port), OPEN_SECONDS
            )
            self._connections.append(connection)
            self._free.put_nowait(connection)
        pending: set[asyncio.Task[None]] = set()
        self.started = start = time.monotonic()
        try:
            while True:
                due = start + self.sent / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                self.sent += 1
                request = asyncio.create_task(self._one())
                pending.add(request)
                request.add_done_callback(pending.discard)
        finally:
            self.stopped = time.monotonic()
            if pending:
                await asyncio.wait(pending)
            for connection in self._connections:
                connection.close()

    async def _one(self) -> None:
        if self._free.empty():
            self.queued += 1
        connection = await self._free.get()
        try:
            answer = await connection.request(self.payload)
        except (OSError, ValueError, TimeoutError) as error:
            self.failed += 1
            self.error = repr(error)[:300]
            return  # a broken connection is not given back
        self._free.put_nowait(connection)
        if answer.startswith(OK_STATUS) and _created(answer):
            self.answered += 1
        else:
            self.failed += 1
            self.error = answer.decode(errors="replace")[:300]

    async def stop(self) -> dict[str, Any]:
        self._runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._runner
        stopped = self.stopped if self.stopped is not None else time.monotonic()
        return {
            "sent": self.sent,
            "answered": self.answered,
            "failed": self.failed,
            "queued": self.queued,
            "seconds": stopped - self.started,
            "error": self.error,
        }


async def main(channel: Channel, params: dict[str, Any]) -> None:
    load: Load | None = None
    while (message := await channel.receive()) is not None:
        command = message["command"]
        if command == "measure":
            channel.send("measured", rows=await _measure(params, message))
        elif command == "load":
            load = Load(params["http_url"], message["rate"])
            channel.send("loading")
        elif command == "unload" and load is not None:
            channel.send("unloaded", **await load.stop())
            load = None
    if load is not None:
        await load.stop()


if __name__ == "__main__":
    run_agent(main)
