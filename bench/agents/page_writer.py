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

from functools import partial
from typing import Any

from bench.agents.channel import Channel, run_agent
from bench.agents.writer import DELTA, GENERATING_STAGE, LEASE_SECONDS, Writer, serve
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

    def take_ran(self) -> dict[str, Any]:
        shown, self.shown = self.shown, []
        return {**super().take_ran(), "shown": shown}


async def main(channel: Channel, params: dict[str, Any]) -> None:
    await serve(channel, PageWriter(params["database_url"], params["redis_url"]))


if __name__ == "__main__":
    run_agent(main)
