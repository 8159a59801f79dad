"""A running API process, as the benchmarks see it: its addresses, its CPU time and
memory, and a quick way to make tasks through it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from dataclasses import dataclass

import httpx
import psutil

from bench.processes import Child

# A cold start of the API imports a lot, and the machine may be busy with other work.
API_START_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1
BENCH_PROMPT = "A benchmark task: a writer process plays the worker."
# createTask mutations per request, and requests at once, when a benchmark makes tasks.
CREATE_BATCH = 100
CREATE_CONCURRENCY = 4
CREATE_TIMEOUT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Api:
    child: Child
    port: int
    profiler: Child | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the API has used so far: its process and, with
        AITASKS_API_WORKERS above 1, the processes it started."""
        process = psutil.Process(self.child.pid)
        total = 0.0
        for member in (process, *process.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = member.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        """The API process's resident memory, in bytes."""
        return int(psutil.Process(self.child.pid).memory_info().rss)

    async def create_tasks(self, count: int) -> list[str]:
        """`count` new demo tasks, made with the `createTask` mutation like any client's.

        No worker runs unless a benchmark starts one, so they stay PENDING until the
        benchmark's writer claims them. Many mutations share a request, to be quick.
        """
        async with httpx.AsyncClient(trust_env=False, timeout=CREATE_TIMEOUT_SECONDS) as client:
            gate = asyncio.Semaphore(CREATE_CONCURRENCY)

            async def create(size: int) -> list[str]:
                async with gate:
                    return await self._create_batch(client, size)

            sizes = [min(CREATE_BATCH, count - start) for start in range(0, count, CREATE_BATCH)]
            batches = await asyncio.gather(*(create(size) for size in sizes))
        return [task_id for batch in batches for task_id in batch]

    async def _create_batch(self, client: httpx.AsyncClient, size: int) -> list[str]:
        fields = " ".join(
            f"t{number}: createTask(input: {{prompt: {json.dumps(BENCH_PROMPT)}}}) "
            "{ __typename ... on Task { id } ... on ValidationError { message } }"
            for number in range(size)
        )
        response = await client.post(self.http_url, json={"query": f"mutation {{ {fields} }}"})
        body = response.json()
        if body.get("errors") or not body.get("data"):
            raise RuntimeError(f"createTask failed: {body}")
        created = [body["data"][f"t{number}"] for number in range(size)]
        refused = [task for task in created if task["__typename"] != "Task"]
        if refused:
            raise RuntimeError(f"createTask refused a benchmark task: {refused[0]}")
        return [task["id"] for task in created]

    async def wait_healthy(self) -> None:
        url = f"http://127.0.0.1:{self.port}/healthz"
        deadline = time.monotonic() + API_START_TIMEOUT_SECONDS
        async with httpx.AsyncClient(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.child.process.returncode is not None:
                    raise self.child.failure("exited while starting")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                await asyncio.sleep(POLL_SECONDS)
        raise self.child.failure(f"did not answer {url} within {API_START_TIMEOUT_SECONDS:g} s")
