"""`aitasks run`: the whole service in one command, for a laptop or a first try.

Starts embedded PostgreSQL and Redis unless URLs are configured, migrates, runs the API
and a worker as child processes, and on Ctrl-C stops all of it, leaving nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from graphql_app import embedded, keys_cli
from graphql_app.settings import DEMO_MODEL, Settings, export_service_urls
from persistence import admin
from persistence.migrate import upgrade_to_head
from persistence.models import TaskKind
from tasks.celery_app import MAINTENANCE_QUEUE, QUEUES

# How long the API may take to answer its health check after start.
API_START_TIMEOUT_SECONDS = 60.0
FLOWER_PORT = 5555
POLL_SECONDS = 0.2


class StartupFailed(Exception):
    """Something the service needs did not start; the message says what."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _say(message: str) -> None:
    print(f"aitasks: {message}", flush=True)


@contextlib.contextmanager
def _services(settings: Settings) -> Iterator[tuple[str, str]]:
    """The database and Redis URLs, starting embedded servers for those not configured."""
    started = embedded.EmbeddedServices()
    try:
        database_url, redis_url = settings.database_url, settings.redis_url
        data_dir = settings.data_dir.resolve()
        if not database_url:
            _say(f"starting embedded PostgreSQL (data in {data_dir / 'pgdata'})")
            started.postgres, server_url = embedded.start_postgres(data_dir / "pgdata")
            database_url = asyncio.run(admin.create_database(server_url, embedded.DATABASE_NAME))
        if not redis_url:
            _say(f"starting embedded Redis (data in {data_dir / 'redis'})")
            started.redis, redis_url = embedded.start_redis(data_dir / "redis")
        yield database_url, redis_url
    finally:
        started.stop()


def _spawn(name: str, *command: str) -> Child:
    # A session of its own: Ctrl-C reaches only the supervisor, which stops the children
    # in order, and a whole process group can be killed if a child will not stop.
    process = subprocess.Popen(
        [sys.executable, "-m", "graphql_app.cli", *command], start_new_session=True
    )
    return Child(name, process)


def _spawn_workers() -> list[Child]:
    """A worker per kind of task, so that a flood of one kind never holds up another;
    the text worker also runs the sweeper and its schedule."""
    workers = []
    for kind, queue in QUEUES.items():
        queues = [queue, MAINTENANCE_QUEUE] if kind == TaskKind.TEXT_GENERATION else [queue]
        beat = "--beat" if kind == TaskKind.TEXT_GENERATION else "--no-beat"
        workers.append(_spawn(f"{queue} worker", "worker", "--queues", ",".join(queues), beat))
    return workers


def _stop(children: list[Child], timeout: float) -> None:
    # Only the main processes are asked: the worker then finishes its running tasks with
    # its pool intact, where a signal to the whole group would kill them mid-task.
    for child in children:
        child.process.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.0, deadline - time.monotonic()))
    for child in children:
        # Also reaps what a child left in its group (Celery's pool processes, say).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()


def _wait_for_api(settings: Settings, api: Child) -> None:
    url = f"http://{settings.host}:{settings.port}/healthz"
    deadline = time.monotonic() + API_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise StartupFailed(
                f"the API exited while starting: is port {settings.port} in use? "
                "Set AITASKS_PORT to another port."
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(POLL_SECONDS)
    raise StartupFailed(f"the API did not answer on {url} within {API_START_TIMEOUT_SECONDS:g} s")


def _banner(settings: Settings, key: str | None) -> None:
    base = f"http://{settings.host}:{settings.port}"
    model = settings.effective_default_model
    note = " (offline: set OPENAI_API_KEY for a real model)" if model == DEMO_MODEL else ""
    _say(f"ready. GraphiQL: {base}/graphql")
    if key is None:
        _say("AUTHENTICATION IS OFF (AITASKS_AUTH=off): anyone who can reach the API uses it")
    else:
        _say(f"API key (development): {key}")
        _say(
            f"  log in to GraphiQL with it at {base}/login; "
            "clients send 'Authorization: Bearer <key>'"
        )
    _say(f"default model: {model}{note}")
    _say("press Ctrl-C to stop everything")


def _watch(children: list[Child]) -> None:
    while True:
        for child in children:
            if child.process.poll() is not None:
                raise StartupFailed(
                    f"the {child.name} stopped (exit code {child.process.returncode})"
                )
        time.sleep(POLL_SECONDS)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(settings: Settings, *, flower: bool = False) -> int:
    """Run everything until Ctrl-C or SIGTERM; return the exit code."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    children: list[Child] = []
    try:
        with _services(settings) as (database_url, redis_url):
            export_service_urls(database_url, redis_url)
            _say("migrating the database")
            upgrade_to_head(database_url)
            key = keys_cli.development_key(database_url, settings) if settings.auth else None
            children.extend(_spawn_workers())
            children.append(_spawn("API", "api"))
            if flower:
                children.append(_spawn("Flower", "flower", "--port", str(FLOWER_PORT)))
            try:
                _wait_for_api(settings, children[-1])
                _banner(settings, key)
                if flower:
                    _say(f"Flower: http://{settings.host}:{FLOWER_PORT}")
                _watch(children)
            finally:
                _say("stopping")
                _stop(children, settings.shutdown_timeout_seconds)
    except KeyboardInterrupt:
        _say("stopped")
        return 0
    except StartupFailed as error:
        _say(f"error: {error}")
        return 1
    return 0
