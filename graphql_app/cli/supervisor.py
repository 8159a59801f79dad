"""`aitasks run`: the whole service in one command, for a laptop or a first try.

Starts embedded PostgreSQL and Redis unless URLs are configured, migrates, runs the API
and a worker per kind of task as child processes, says "ready" once each of them
answers, and stops all of it on SIGINT, SIGTERM or SIGHUP, leaving nothing behind.

The supervisor owns its children: a signal only raises a flag, which start-up checks
between its steps and the waiting loops check while they wait, so a signal at any moment
still reaches the one place that stops every child it started. A child that exits, or a
port another program holds, stops the supervisor with a one-line reason and exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
import psutil

from graphql_app.cli import devstack, embedded
from graphql_app.cli import keys as keys_cli
from persistence import admin
from persistence.migrate import upgrade_to_head
from persistence.settings import DEMO_MODEL, Settings, export_service_urls, get_settings
from tasks.celery_app import MAINTENANCE_QUEUE
from tasks.kinds import in_order
from tasks.kinds.text import KIND as TEXT_KIND

FLOWER_PORT = 5555
POLL_SECONDS = 0.2
# A ping to the workers collects answers for this long.
PING_SECONDS = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_FAILED = 1


class StartupFailed(Exception):
    """Something the service needs did not start or stopped; the message says what."""


class Stopped(Exception):
    """A stop signal arrived; the message names it."""


class Signals:
    """SIGINT, SIGTERM and SIGHUP as a flag. Handlers are installed even for a signal the
    parent ignored (a background job of a script ignores SIGINT): an explicit signal to
    the supervisor must still stop it, and its children with it."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._event = threading.Event()

    def install(self) -> None:
        for number in STOP_SIGNALS:
            signal.signal(number, self._handle)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(number).name
        self._event.set()

    def check(self) -> None:
        """Raise Stopped if a stop signal has arrived."""
        if self.received is not None:
            raise Stopped(self.received)

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking for a stop signal (then raise Stopped)."""
        self._event.wait(seconds)
        self.check()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]

    def exited(self) -> str | None:
        """Why the child is gone, or None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return f"the {self.name} stopped ({how})"


def _say(message: str) -> None:
    # After SIGHUP the terminal may be gone: stopping the children matters more than
    # saying so.
    with contextlib.suppress(OSError):
        print(f"aitasks: {message}", flush=True)


@contextlib.contextmanager
def _services(settings: Settings, signals: Signals) -> Iterator[tuple[str, str]]:
    """The database and Redis URLs, starting embedded servers for those not configured."""
    started = embedded.EmbeddedServices()
    try:
        database_url, redis_url = settings.database_url, settings.redis_url
        data_dir = settings.data_dir.resolve()
        if not database_url:
            _say(f"starting embedded PostgreSQL (data in {data_dir / 'pgdata'})")
            started.postgres, server_url = embedded.start_postgres(data_dir / "pgdata")
            signals.check()
            database_url = asyncio.run(admin.create_database(server_url, embedded.DATABASE_NAME))
        if not redis_url:
            signals.check()
            _say(f"starting embedded Redis (data in {data_dir / 'redis'})")
            started.redis, redis_url = embedded.start_redis(data_dir / "redis")
        signals.check()
        yield database_url, redis_url
    finally:
        started.stop()


class Children:
    """The child processes, each in a session of its own: a Ctrl-C in the terminal reaches
    only the supervisor, which stops them in order, and a child that will not stop is
    killed with everything it started (Celery's pool processes)."""

    def __init__(self) -> None:
        self.all: list[Child] = []

    def spawn(self, name: str, *command: str) -> Child:
        process = subprocess.Popen(
            [sys.executable, "-m", "graphql_app.cli", *command], start_new_session=True
        )
        child = Child(name, process)
        self.all.append(child)
        return child

    def check(self) -> None:
        for child in self.all:
            reason = child.exited()
            if reason is not None:
                raise StartupFailed(reason)

    def stop(self, timeout: float) -> None:
        # Only the main processes are asked: a worker then finishes its running tasks with
        # its pool intact, where a signal to the whole group would kill them mid-task.
        for child in self.all:
            with contextlib.suppress(ProcessLookupError):
                child.process.terminate()
        deadline = time.monotonic() + timeout
        for child in self.all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(max(0.0, deadline - time.monotonic()))
        for child in self.all:
            # Also reaps what a child left in its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def _spawn_workers(children: Children) -> int:
    """A worker per kind of task, so that a flood of one kind never holds up another;
    the text worker also runs the sweeper and its schedule. Returns how many Celery
    workers will answer a ping (the text worker's queues take two: tasks/worker/text_worker.py)."""
    from tasks.worker.app import celery_workers

    answering = 0
    for kind in in_order():
        queue = kind.queue
        text = kind is TEXT_KIND
        queues = [queue, MAINTENANCE_QUEUE] if text else [queue]
        beat = "--beat" if text else "--no-beat"
        command = ("worker", "--queues", ",".join(queues), beat, "--quiet")
        children.spawn(f"{queue} worker", *command)
        answering += celery_workers(queues)
    return answering


def check_port_free(host: str, port: int) -> None:
    """Fail now, with what to do, if another program holds the API's port: its health
    check would answer for ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise StartupFailed(f"cannot listen on {host}:{port}: {error}") from None
        raise StartupFailed(
            f"cannot listen on {host}:{port}: another program holds the port; stop it, or "
            "set AITASKS_PORT to a free port"
        ) from None


def _listens(pid: int, port: int) -> bool:
    """Whether the process `pid` (or one it started) listens on `port`."""
    try:
        parent = psutil.Process(pid)
        for process in [parent, *parent.children(recursive=True)]:
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                    return True
    except psutil.Error:
        return False
    return False


def _api_answers(settings: Settings, api: Child) -> bool:
    if not _listens(api.process.pid, settings.port):
        return False
    url = f"http://{settings.host}:{settings.port}/healthz"
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1.0).status_code == 200
    return False


def _workers_answering() -> int:
    from tasks.worker.app import ping_local_workers

    return len(ping_local_workers(get_settings(), PING_SECONDS))


def _wait_until_ready(
    settings: Settings, children: Children, api: Child, workers: int, signals: Signals
) -> None:
    """Wait for the API to serve and every worker to answer a ping; fail fast if any
    child exits, and after AITASKS_RUN_START_TIMEOUT_SECONDS."""
    timeout = settings.run_start_timeout_seconds
    deadline = time.monotonic() + timeout
    api_ready = workers_ready = False
    while time.monotonic() < deadline:
        children.check()
        api_ready = api_ready or _api_answers(settings, api)
        workers_ready = workers_ready or _workers_answering() >= workers
        if api_ready and workers_ready:
            return
        signals.wait(POLL_SECONDS)
    waiting = "the API" if not api_ready else "the workers"
    raise StartupFailed(
        f"{waiting} did not answer within {timeout:g} s "
        "(AITASKS_RUN_START_TIMEOUT_SECONDS); see the log lines above"
    )


def _banner(settings: Settings, key: str | None) -> None:
    base = f"http://{settings.host}:{settings.port}"
    model = settings.effective_default_model
    note = " (offline: set OPENAI_API_KEY for a real model)" if model == DEMO_MODEL else ""
    _say(f"ready. Dashboard: {base}/   GraphiQL: {base}/graphql")
    if key is None:
        _say("AUTHENTICATION IS OFF (AITASKS_AUTH=off): anyone who can reach the API uses it")
    else:
        _say(f"API key (development): {key}")
        _say(
            f"  log in with it at {base}/login (dashboard and GraphiQL); "
            "clients send 'Authorization: Bearer <key>'"
        )
    _say(f"default model: {model}{note}")
    _say(f"try, in another terminal here: {_command()} submit --watch 'Hello'")
    _say("press Ctrl-C to stop everything")


def _command() -> str:
    """How to call `aitasks` from here: by name if it is on PATH, else by its path, with a
    note on how to put it there."""
    script = Path(sys.executable).parent / "aitasks"
    found = shutil.which("aitasks")
    if found and Path(found).resolve() == script.resolve():
        return "aitasks"
    with contextlib.suppress(ValueError):
        script = script.relative_to(Path.cwd())
    _say(f"(`aitasks` is not on your PATH: `source {script.parent}/activate` puts it there)")
    return str(script)


def _watch(children: Children, signals: Signals) -> None:
    while True:
        children.check()
        signals.wait(POLL_SECONDS)


def _announce(settings: Settings, database_url: str, redis_url: str) -> None:
    pid = os.getpid()
    stack = devstack.DevStack(
        pid=pid,
        started=devstack.process_started(pid),
        api_url=f"http://{settings.host}:{settings.port}",
        database_url=database_url,
        redis_url=redis_url,
    )
    devstack.write(settings.data_dir, stack)


def _serve(settings: Settings, children: Children, signals: Signals, *, flower: bool) -> None:
    with _services(settings, signals) as (database_url, redis_url):
        export_service_urls(database_url, redis_url)
        _say("migrating the database")
        upgrade_to_head(database_url)
        signals.check()
        key = keys_cli.development_key(database_url, settings) if settings.auth else None
        check_port_free(settings.host, settings.port)
        try:
            signals.check()
            workers = _spawn_workers(children)
            api = children.spawn("API", "api")
            if flower:
                children.spawn("Flower", "flower", "--port", str(FLOWER_PORT))
            _wait_until_ready(settings, children, api, workers, signals)
            _announce(settings, database_url, redis_url)
            _banner(settings, key)
            if flower:
                _say(f"Flower: http://{settings.host}:{FLOWER_PORT}")
            _watch(children, signals)
        finally:
            devstack.remove(settings.data_dir)
            if children.all:
                _say("stopping")
            children.stop(settings.shutdown_timeout_seconds)


def run(settings: Settings, *, flower: bool = False) -> int:
    """Run everything until a stop signal; return the exit code (1 if something failed)."""
    signals = Signals()
    signals.install()
    try:
        _serve(settings, Children(), signals, flower=flower)
    except Stopped as stop:
        _say(f"stopped ({stop})")
        return 0
    except StartupFailed as error:
        _say(f"error: {error}")
        return EXIT_FAILED
    return 0
