"""The client host's side of the multi-host test: plain HTTP and graphql-transport-ws,
as any client would speak them. Each command prints JSON; `follow` prints a line per
update as it arrives, so the test can act in the middle of a task.

    python -m tests.multihost.client healthy URL
    python -m tests.multihost.client create URL INPUT_JSON
    python -m tests.multihost.client follow TASK_ID URL [URL...]
    python -m tests.multihost.client download URL
    python -m tests.multihost.client submit-and-follow CREATE_URL INPUT_JSON URL [URL...]
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

import httpx
from websockets import ConnectionClosed, Subprotocol
from websockets.sync.client import connect

from tests.fixtures.graphql import CREATE_TASK, TASK_STATUS

TIMEOUT_SECONDS = 30.0
PING_SECONDS = 1.5


def _print(value: Any) -> None:
    print(json.dumps(value), flush=True)


def healthy(url: str) -> None:
    try:
        ok = httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        ok = False
    _print({"ok": ok})


def create(url: str, task_input: str) -> None:
    body = {"query": CREATE_TASK, "variables": {"input": json.loads(task_input)}}
    response = httpx.post(f"{url}/graphql", json=body, timeout=TIMEOUT_SECONDS)
    _print(response.json())


def download(url: str) -> None:
    response = httpx.get(url, timeout=TIMEOUT_SECONDS)
    data = response.content
    _print({"status": response.status_code, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "head": base64.b64encode(data[:8]).decode()})  # fmt: skip


def _follow_one(url: str, task_id: str, seen: list[int]) -> bool:
    """Follow on one API from the last sequence in `seen`, adding each one that arrives;
    whether the subscription completed."""
    ws_url = url.replace("http://", "ws://", 1) + "/graphql"
    with connect(
        ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        open_timeout=TIMEOUT_SECONDS,
        # A host that vanished sends nothing, not even a close: pings notice it.
        ping_interval=PING_SECONDS,
        ping_timeout=PING_SECONDS,
    ) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(TIMEOUT_SECONDS))["type"] == "connection_ack"
        payload = {"query": TASK_STATUS, "variables": {"id": task_id, "after": seen[-1]}}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        while True:
            message = json.loads(ws.recv(TIMEOUT_SECONDS))
            if message["type"] == "ping":
                ws.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next":
                update = message["payload"]["data"]["taskStatus"]
                _print({"update": update, "via": url})
                seen.append(update["sequence"])
            elif message["type"] == "complete":
                return True
            else:
                raise AssertionError(f"unexpected message: {message}")


def follow(task_id: str, *urls: str) -> None:
    """From the first change, on the first API; when it goes away, on the next one,
    from the last sequence seen."""
    seen = [0]
    for url in urls:
        try:
            done = _follow_one(url, task_id, seen)
        except (ConnectionClosed, OSError, TimeoutError) as error:
            _print({"lost": url, "after": seen[-1], "reason": type(error).__name__})
            continue
        if done:
            _print({"completed": True})
            return
    _print({"completed": False})


def submit_and_follow(create_url: str, task_input: str, *urls: str) -> None:
    """Create a task, then follow it at once, as `follow` does."""
    body = {"query": CREATE_TASK, "variables": {"input": json.loads(task_input)}}
    response = httpx.post(f"{create_url}/graphql", json=body, timeout=TIMEOUT_SECONDS)
    task_id = response.json()["data"]["createTask"]["id"]
    _print({"created": task_id})
    follow(task_id, *urls)


COMMANDS = {
    "healthy": healthy,
    "create": create,
    "download": download,
    "follow": follow,
    "submit-and-follow": submit_and_follow,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
