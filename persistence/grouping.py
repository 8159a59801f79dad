"""Work from concurrent requests, sent out together.

Under load many creates are in flight at once, each making the same round trip (an
INSERT, a push to the broker). `Grouped` lets them share it: at most `max_in_flight`
sends run at once, and whatever arrives while they all do goes out with the next one, up
to `max_items`. A request alone goes out at once, in a group of one, so grouping costs a
lone client nothing; each request still waits for its own outcome.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from prometheus_client import Histogram

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
# Sends a group; returns each item's outcome, in order: a result, or the error to raise.
Send = Callable[[list[Item]], Awaitable[list[Outcome | BaseException]]]

GROUP_SIZES = Histogram(
    "aitasks_group_items",
    "Requests sent out together in one statement or Redis call, by what was sent.",
    ["sent"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


class Grouped(Generic[Item, Outcome]):
    def __init__(
        self, name: str, send: Send[Item, Outcome], *, max_items: int, max_in_flight: int
    ) -> None:
        self._send = send
        self._max_items = max_items
        self._max_in_flight = max_in_flight
        self._sizes = GROUP_SIZES.labels(name)
        self._waiting: deque[tuple[Item, asyncio.Future[Outcome]]] = deque()
        self._in_flight = 0
        # Running sends, held so that the loop does not drop them.
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Outcome:
        """Send `item` with the next group to go out; its outcome."""
        outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, outcome))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            # Started on the loop's next turn: what arrives meanwhile joins it.
            running = asyncio.create_task(self._send_while_waiting())
            self._running.add(running)
            running.add_done_callback(self._running.discard)
        return await outcome

    async def _send_while_waiting(self) -> None:
        try:
            while self._waiting:
                count = min(len(self._waiting), self._max_items)
                taken = [self._waiting.popleft() for _ in range(count)]
                # A request that went away before its group went out is not sent.
                group = [(item, outcome) for item, outcome in taken if not outcome.done()]
                if group:
                    await self._send_group(group)
        finally:
            self._in_flight -= 1

    async def _send_group(self, group: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        self._sizes.observe(len(group))
        try:
            outcomes = await self._send([item for item, _ in group])
        except asyncio.CancelledError:
            # Stopping: the requests waiting for this group stop too.
            for _, future in group:
                future.cancel()
            raise
        except Exception as error:
            outcomes = [error] * len(group)
        for (_, waiting), outcome in zip(group, outcomes, strict=True):
            if waiting.done():
                continue
            if isinstance(outcome, BaseException):
                waiting.set_exception(outcome)
            else:
                waiting.set_result(outcome)
