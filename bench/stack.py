"""The real parts a benchmark runs against.

PostgreSQL and Redis are the servers in AITASKS_DATABASE_URL / AITASKS_REDIS_URL when set,
else embedded ones started as `make run` starts them (`graphql_app.cli.embedded`). Each
benchmark gets a fresh database, migrated by `aitasks migrate`, and its own API process
(`aitasks api`, through `bench.api_server`), and drops the database when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.api import Api, free_port
from bench.processes import Agent, Child, child_env, spawn, spawn_program
from graphql_app.cli import embedded
from persistence import admin

MIGRATE_TIMEOUT_SECONDS = 120.0
# py-spy samples per second: enough for a few seconds of fan-out to show its shape.
PROFILE_RATE = 250
BENCH_APPLICATION_NAME = "aitasks-bench"


@dataclass(frozen=True)
class Backing:
    """The PostgreSQL server (databases are made on it) and the Redis every stack uses."""

    server_url: str
    redis_url: str
    # Started here (embedded), or given by URL.
    embedded_postgres: bool
    embedded_redis: bool


@contextlib.contextmanager
def backing_services(workdir: Path) -> Iterator[Backing]:
    started = embedded.EmbeddedServices()
    try:
        server_url = os.environ.get("AITASKS_DATABASE_URL")
        redis_url = os.environ.get("AITASKS_REDIS_URL")
        if not server_url:
            started.postgres, server_url = embedded.start_postgres(
                workdir / "pgdata", temporary=True
            )
        if not redis_url:
            started.redis, redis_url = embedded.start_redis(workdir / "redis")
        yield Backing(
            server_url,
            redis_url,
            embedded_postgres=started.postgres is not None,
            embedded_redis=started.redis is not None,
        )
    finally:
        started.stop()


@dataclass(frozen=True)
class Context:
    """Where benchmarks run: the backing servers, a directory for logs, whether to profile
    the API processes (with py-spy)."""

    backing: Backing
    log_dir: Path
    profile: bool = False


@dataclass
class Stack:
    """A fresh database on the backing servers, and the processes a benchmark starts."""

    backing: Backing
    database_url: str
    log_dir: Path
    profile: bool = False
    children: list[Child] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)

    def env(self, **settings: str) -> dict[str, str]:
        return child_env(
            {
                "AITASKS_DATABASE_URL": self.database_url,
                "AITASKS_REDIS_URL": self.backing.redis_url,
                "AITASKS_HOST": "127.0.0.1",
                "AITASKS_DEFAULT_MODEL": "demo",
                # The load agents send no API key: the figures leave out one cached key
                # check per request.
                "AITASKS_AUTH": "off",
                # Nor the per-caller limits: the load comes from one caller by design.
                "AITASKS_REQUESTS_PER_MINUTE": "0",
                "AITASKS_CREATES_PER_MINUTE": "0",
                "AITASKS_UNFINISHED_TASKS_MAX": "0",
                # Nor the WebSockets per key: 1,000 and 10,000 subscribers share that one.
                "AITASKS_WS_CONNECTIONS_MAX_PER_KEY": "0",
                # Test data is made with many createTask per request (bench/api.py), a
                # document far larger than a client's.
                "AITASKS_QUERY_MAX_TOKENS": "100000",
                "AITASKS_QUERY_MAX_ALIASES": "10000",
                **settings,
            }
        )

    async def start_api(self, name: str = "api", **settings: str) -> Api:
        """`aitasks api` on a free port of 127.0.0.1, with these AITASKS_ settings."""
        api = await self.start_server(name, "bench.api_server", **settings)
        api.profiler = await self.profile_process(name, api.child.pid)
        return api

    async def start_server(self, name: str, module: str, **settings: str) -> Api:
        """`python -m module`, an HTTP server answering /healthz, on a free port."""
        port = free_port()
        env = self.env(AITASKS_PORT=str(port), **settings)
        child = await self.start_process(name, ["-m", module], env)
        api = Api(child, port)
        await api.wait_healthy()
        return api

    async def start_process(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        """`python <args>`, stopped with the stack (or before, by `stop_process`)."""
        child = await spawn(name, args, env, self.log_dir)
        self.children.append(child)
        return child

    async def stop_process(self, child: Child) -> None:
        await child.stop()
        self.children.remove(child)

    async def profile_process(self, name: str, pid: int, *options: str) -> Child | None:
        """With --profile, py-spy on process `pid` (stopped with `stop_profiler`)."""
        if not self.profile:
            return None
        child, _ = await self.start_profiler(name, pid, *options)
        return child

    async def start_profiler(
        self, name: str, pid: int, *options: str, rate: int = PROFILE_RATE
    ) -> tuple[Child, Path]:
        """py-spy sampling process `pid` `rate` times a second until interrupted
        (`stop_profiler`), written as collapsed stacks to the path returned; `options` are
        more py-spy options."""
        output = self.log_dir / f"{name}-{pid}.profile.txt"
        args = ["record", "--pid", str(pid), "--format", "raw", "--rate", str(rate)]
        venv_py_spy = Path(sys.executable).with_name("py-spy")
        py_spy = str(venv_py_spy) if venv_py_spy.exists() else shutil.which("py-spy")
        if py_spy is None:
            raise RuntimeError("profiling needs py-spy: .venv/bin/pip install py-spy")
        command = [py_spy, *args, *options, "--output", str(output)]
        child = await spawn_program(f"{name}-py-spy", command, self.log_dir)
        # Stopped before the API (SIGINT makes py-spy write its output).
        self.children.append(child)
        return child, output

    async def stop_profiler(self, profiler: Child) -> None:
        await profiler.interrupt()
        await self.stop_process(profiler)

    async def stop_api(self, api: Api) -> None:
        if api.profiler is not None:
            await self.stop_profiler(api.profiler)
        await self.stop_process(api.child)

    async def agent(self, name: str, module: str, params: dict[str, Any]) -> Agent:
        agent = await Agent.start(name, module, params, self.env(), self.log_dir)
        self.agents.append(agent)
        return agent

    async def stop_agent(self, agent: Agent) -> None:
        await agent.stop()
        self.agents.remove(agent)

    async def writer(self, name: str = "writer") -> Agent:
        params = {"database_url": self.database_url, "redis_url": self.backing.redis_url}
        return await self.agent(name, "bench.agents.writer", params)

    async def close(self) -> None:
        for agent in reversed(self.agents):
            await agent.stop()
        for child in reversed(self.children):
            if child.name.endswith("-py-spy"):
                await child.interrupt()
            await child.stop()
        self.agents.clear()
        self.children.clear()


async def migrate(database_url: str, log_dir: Path) -> None:
    env = child_env({"AITASKS_DATABASE_URL": database_url})
    child = await spawn("migrate", ["-m", "graphql_app.cli", "migrate"], env, log_dir)
    try:
        code = await asyncio.wait_for(child.process.wait(), MIGRATE_TIMEOUT_SECONDS)
    finally:
        await child.stop()
    if code != 0:
        raise child.failure(f"failed (exit code {code})")


@contextlib.asynccontextmanager
async def stack(context: Context, label: str) -> AsyncIterator[Stack]:
    """A fresh, migrated database for one benchmark; everything it started is stopped and
    the database dropped at the end."""
    name = f"aitasks_bench_{label}_{uuid.uuid4().hex[:8]}"
    backing = context.backing
    database_url = await admin.create_database(backing.server_url, name)
    bench_stack = Stack(backing, database_url, context.log_dir, context.profile)
    try:
        await migrate(database_url, context.log_dir)
        yield bench_stack
    finally:
        await bench_stack.close()
        await admin.drop_database(backing.server_url, name)
