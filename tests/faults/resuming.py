"""The "subscriber disconnected and resumed" case: during a burst, subscribers follow
every running task with `taskStatus`, drop their socket after a change or two, and
resume with `after:` the last sequence they saw, until the task ends. What each heard is
checked against the task's own sequence: no gap, no duplicate, nothing out of order."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import websockets
from websockets import Subprotocol

from tests.faults.harness import TERMINAL
from tests.fixtures.stack import Stack

WATCH = (
    "subscription ($id: ID!, $after: Int) "
    "{ taskStatus(id: $id, after: $after) { sequence status } }"
)
# Subscribers drop their socket after this many updates, in turn (never a whole task).
DROP_AFTER = (1, 2)
# New tasks are looked for this often while the burst lasts.
DISCOVER_EVERY_SECONDS = 0.5
# A subscriber that hears nothing for this long has failed (the task is stuck or lost).
# Generous: a task at the end of the burst's queue may wait a minute to start on a busy
# machine, and its subscriber hears nothing meanwhile.
QUIET_SECONDS = 180.0


@dataclass
class Heard:
    """What the subscribers of one case heard, and what it should have been."""

    sequences: dict[str, list[int]] = field(default_factory=dict)
    finals: dict[str, int] = field(default_factory=dict)
    resumes: int = 0
    failures: int = 0
    # Why each failed subscriber stopped, to compare with the task's row.
    failed: dict[str, str] = field(default_factory=dict)

    def count(self) -> tuple[int, int, int]:
        """Gaps, duplicates and out-of-order updates over every task followed."""
        gaps = duplicates = disorder = 0
        for task_id, heard in self.sequences.items():
            duplicates += len(heard) - len(set(heard))
            disorder += sum(later < earlier for earlier, later in pairwise(heard))
            if heard:
                expected = set(range(heard[0], self.finals.get(task_id, heard[-1]) + 1))
                gaps += len(expected - set(heard))
        return gaps, duplicates, disorder

    @property
    def bad(self) -> int:
        return sum(self.count()) + self.failures

    def summary(self) -> str:
        gaps, duplicates, disorder = self.count()
        failed = f", {self.failures} failed" if self.failures else ""
        return (
            f"{len(self.sequences)} tasks followed, {self.resumes} resumes: {gaps} gaps, "
            f"{duplicates} duplicates, {disorder} out of order{failed}"
        )


async def _session(
    url: str, task_id: str, after: int | None, drop_after: int
) -> tuple[list[Any], bool]:
    """One socket: subscribe, take up to `drop_after` updates, then drop the socket; also
    say whether the server completed the subscription (the task has ended)."""
    updates: list[Any] = []
    completed = False
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), QUIET_SECONDS))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"not acknowledged: {ack}")
        variables = {"id": task_id, "after": after}
        payload = {"query": WATCH, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        while len(updates) < drop_after:
            message = json.loads(await asyncio.wait_for(ws.recv(), QUIET_SECONDS))
            if message["type"] == "complete":
                completed = True
                break
            if message["type"] != "next" or message["payload"].get("errors"):
                raise RuntimeError(f"an unexpected answer: {message}")
            updates.append(message["payload"]["data"]["taskStatus"])
            if updates[-1]["status"] in TERMINAL:
                break
        # Dropped without a `complete`, as a client whose network went away.
        ws.transport.abort()
    return updates, completed


async def _follow(url: str, task_id: str, heard: Heard) -> None:
    sequences = heard.sequences.setdefault(task_id, [])
    after: int | None = None
    turn = 0
    while True:
        drop_after = DROP_AFTER[turn % len(DROP_AFTER)]
        updates, completed = await _session(url, task_id, after, drop_after)
        turn += 1
        sequences += [update["sequence"] for update in updates]
        if completed or (updates and updates[-1]["status"] in TERMINAL):
            return
        if sequences:
            after = sequences[-1]
        heard.resumes += 1


async def _follow_safely(url: str, task_id: str, heard: Heard) -> None:
    try:
        await _follow(url, task_id, heard)
    except Exception as error:
        heard.failures += 1
        heard.failed[task_id] = f"{error!r} after hearing {heard.sequences.get(task_id)}"


async def follow_while(stack: Stack, seconds: float, running: Any) -> Heard:
    """Follow every task that is running, or starts running, during `seconds`, each
    with resuming subscribers, until all of them have ended."""
    heard = Heard()
    followers: list[asyncio.Task[None]] = []
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        for task_id in await asyncio.to_thread(running):
            if task_id not in heard.sequences:
                heard.sequences[task_id] = []
                followers.append(asyncio.create_task(_follow_safely(stack.ws_url, task_id, heard)))
        await asyncio.sleep(DISCOVER_EVERY_SECONDS)
    await asyncio.gather(*followers)
    return heard
