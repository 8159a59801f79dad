"""Load generator for the web benchmark: the `writer` agent's changes, each with a progress
a page can show.

The same writes as bench/agents/writer.py (`task_writes.record_output`, committed, then
published on Redis, the commit's wall-clock time taken before the publish), except that a
task's n-th change reports progress (n mod 99 + 1) / 100, so the dashboard's progress bar
(`aria-valuenow`) changes with every change and a page can tell which one it shows.

Commands as the writer's (`claim`, `run`, `close`); `ran` also carries `shown`, one
[task, sequence, percent] per change.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from bench.agents.channel import Channel, run_agent
from bench.agents.writer import DELTA, GENERATING_STAGE, LEASE_SECONDS, Writer
from persistence import task_writes

# Percents cycle through 1..99: a task's changes less than 99 apart differ on the page.
CYCLE = 99


def percent_of(number: int) -> int:
    return number % CYCLE + 1


class PageWriter(Writer):
    def __init__(self, database_url: str, redis_url: str) -> None:
        super().__init__(database_url, redis_url)
        self.numbers: dict[int, int] = {}
        self.shown: list[tuple[int, int, int]] = []

    async def change(self, index: int) -> None:
        async with self.locks[index]:
            number = self.numbers.get(index, 0)
            self.numbers[index] = number + 1
            percent = percent_of(number)
            output = partial(
                task_writes.record_output,
                task_id=self.task_ids[index],
                attempt=self.attempts[index],
                delta=DELTA,
                progress=percent / 100,
                stage=GENERATING_STAGE,
                lease_seconds=LEASE_SECONDS,
            )
            made = await self.write(index, output)
            if made is not None:
                self.shown.append((index, made.event.sequence, percent))

    def take_shown(self) -> list[tuple[int, int, int]]:
        shown, self.shown = self.shown, []
        return shown


async def main(channel: Channel, params: dict[str, Any]) -> None:
    writer = PageWriter(params["database_url"], params["redis_url"])
    try:
        while (command := await channel.receive()) is not None:
            if command["command"] == "claim":
                claimed = await writer.claim(command["task_ids"])
                channel.send("claimed", claimed=claimed, changes=writer.take_changes())
            elif command["command"] == "run":
                started = time.monotonic()
                late = await writer.run(command["rate"], command["count"])
                seconds = time.monotonic() - started
                channel.send(
                    "ran",
                    changes=writer.take_changes(),
                    shown=writer.take_shown(),
                    late=late,
                    seconds=seconds,
                )
            elif command["command"] == "close":
                break
    finally:
        await writer.close()
    channel.send("closed")


if __name__ == "__main__":
    run_agent(main)
