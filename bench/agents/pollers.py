"""Load generator: clients that poll the `task` query, each task once per interval.

Parameters: `url` (http://.../graphql), `task_ids`, `interval`. Command `run` (seconds)
polls every task once per `interval`, each at its own phase, for `seconds`; replies
`polled` with every answer as [task, sequence, received] and the request count.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from bench.agents.channel import Channel, run_agent

# What the README shows a polling client asks for.
TASK_QUERY = """
query Poll($id: ID!) {
  task(id: $id) { id status progress sequence result error updatedAt }
}
"""
REQUEST_TIMEOUT_SECONDS = 10.0


class Pollers:
    def __init__(self, client: httpx.AsyncClient, url: str, task_ids: list[str]) -> None:
        self.client = client
        self.url = url
        self.task_ids = task_ids
        self.answers: list[tuple[int, int, float]] = []
        self.requests = 0
        self.errors = 0

    async def poll(self, index: int) -> None:
        self.requests += 1
        body = {"query": TASK_QUERY, "variables": {"id": self.task_ids[index]}}
        try:
            response = await self.client.post(self.url, json=body)
            task = response.json()["data"]["task"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            self.errors += 1
            return
        self.answers.append((index, task["sequence"], time.time()))

    async def follow(self, index: int, interval: float, until: float) -> None:
        due = time.monotonic() + random.uniform(0, interval)
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.poll(index)
            due += interval


async def main(channel: Channel, params: dict[str, Any]) -> None:
    limits = httpx.Limits(max_connections=len(params["task_ids"]))
    # trust_env=False: straight to the API on 127.0.0.1, whatever proxy is configured.
    async with httpx.AsyncClient(
        limits=limits, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False
    ) as client:
        pollers = Pollers(client, params["url"], params["task_ids"])
        while (command := await channel.receive()) is not None:
            if command["command"] == "run":
                until = time.monotonic() + command["seconds"]
                await asyncio.gather(
                    *(
                        pollers.follow(index, params["interval"], until)
                        for index in range(len(params["task_ids"]))
                    )
                )
                channel.send(
                    "polled",
                    answers=pollers.answers,
                    requests=pollers.requests,
                    errors=pollers.errors,
                )
                return


if __name__ == "__main__":
    run_agent(main)
