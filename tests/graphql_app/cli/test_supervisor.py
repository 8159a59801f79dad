"""`aitasks run` owns its children: whatever stops it, and whenever, nothing it started is
left running; a part that cannot start stops it with a reason, never a "ready".

Every process `aitasks run` starts inherits its environment, so a marker variable set
for the test finds them all afterwards, however they were started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.fixtures.stack import Backing, free_port, wait_until

START_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 60
MARKER = "AITASKS_TEST_SUPERVISOR_MARKER"


@dataclass
class Run:
    process: subprocess.Popen[str]
    marker: str
    data_dir: str
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str) -> None:
        wait_until(
            lambda: text in self.output or self.process.poll() is not None,
            START_TIMEOUT_SECONDS,
            f"`aitasks run` to print {text!r}",
        )
        assert text in self.output, self.output

    def supervisor(self) -> psutil.Process:
        # The shell below execs `aitasks run`, so it keeps the shell's pid.
        return psutil.Process(self.process.pid)

    def wait_for_children(self, count: int) -> None:
        wait_until(
            lambda: len(self.supervisor().children()) >= count or self.process.poll() is not None,
            START_TIMEOUT_SECONDS,
            f"`aitasks run` to start {count} processes",
        )

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `aitasks` command in the run's directory, told nothing of where the
        servers are: it reads what the run announced."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AITASKS_", "OPENAI_"))
        }
        env.update(AITASKS_DATA_DIR=self.data_dir, **{MARKER: "a command, not the run"})
        return subprocess.run(
            [sys.executable, "-m", "graphql_app.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop_with(self, *signals: signal.Signals) -> int:
        for number in signals:
            os.kill(self.process.pid, number)
        return self.process.wait(STOP_TIMEOUT_SECONDS)


def leftovers(marker: str) -> list[str]:
    """Live processes that carry the run's marker in their environment."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.environ().get(MARKER) == marker and process.status() != "zombie":
                found.append(f"{process.pid}: {' '.join(process.info['cmdline'] or [])}")
    return found


@contextlib.contextmanager
def aitasks_run(tmp_path: Path, *, ignore_sigint: bool = False, **settings: str) -> Iterator[Run]:
    marker = uuid.uuid4().hex
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AITASKS_", "OPENAI_"))
    }
    env.update(
        AITASKS_PORT=str(free_port()),
        AITASKS_DATA_DIR=str(tmp_path / "data"),
        AITASKS_WORKER_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    env[MARKER] = marker
    # As a script's background job: `trap '' INT` ignores SIGINT, and exec keeps it so.
    trap = "trap '' INT; " if ignore_sigint else ""
    command = f'{trap}exec "{sys.executable}" -m graphql_app.cli run'
    process = subprocess.Popen(
        ["sh", "-c", command],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = Run(process, marker, env["AITASKS_DATA_DIR"])
    reader = threading.Thread(target=lambda: run.lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        yield run
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_SECONDS)
        reader.join(5)
        if process.stdout:
            process.stdout.close()
        # Whatever the test saw, nothing may outlive it.
        for pid in leftovers(marker):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid.split(":")[0]), signal.SIGKILL)


def services(backing: Backing) -> dict[str, str]:
    """A database and Redis of the tests' own, so `aitasks run` starts no embedded ones."""
    _, database_url = backing.new_database()
    return {"AITASKS_DATABASE_URL": database_url, "AITASKS_REDIS_URL": backing.new_redis()}


def test_sigint_during_embedded_start_up_stops_everything_even_when_inherited_ignored(
    tmp_path: Path,
) -> None:
    with aitasks_run(tmp_path, ignore_sigint=True) as run:
        run.wait_for_line("starting embedded PostgreSQL")

        code = run.stop_with(signal.SIGINT)

    assert code == 0, run.output
    assert "stopped (SIGINT)" in run.output
    assert "aitasks: ready." not in run.output
    assert leftovers(run.marker) == []


def test_sighup_while_the_children_start_stops_every_child(
    tmp_path: Path, backing: Backing
) -> None:
    with aitasks_run(tmp_path, **services(backing)) as run:
        run.wait_for_children(4)

        code = run.stop_with(signal.SIGHUP)

    assert code == 0, run.output
    assert "stopped (SIGHUP)" in run.output
    assert leftovers(run.marker) == []


def test_sigint_then_sigterm_to_a_background_run_leaves_nothing_running(
    tmp_path: Path, backing: Backing
) -> None:
    with aitasks_run(tmp_path, ignore_sigint=True, **services(backing)) as run:
        run.wait_for_line("aitasks: ready.")
        stack_file = tmp_path / "data" / "stack.json"
        assert stack_file.stat().st_mode & 0o777 == 0o600
        # The finder sees the run itself, its API and its three workers while they run.
        assert len(leftovers(run.marker)) >= 5
        for command in (["inspect"], ["worker-health"], ["keys", "list"], ["list"]):
            found = run.command(*command)
            assert found.returncode == 0, (command, found.stderr)

        code = run.stop_with(signal.SIGINT, signal.SIGTERM)

    assert code == 0, run.output
    assert leftovers(run.marker) == []
    assert not stack_file.exists()


def test_a_taken_port_stops_the_run_with_a_reason_and_no_ready(
    tmp_path: Path, backing: Backing
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with aitasks_run(tmp_path, AITASKS_PORT=str(port), **services(backing)) as run:
            code = run.process.wait(START_TIMEOUT_SECONDS)

    assert code == 1
    assert f"aitasks: error: cannot listen on 127.0.0.1:{port}" in run.output
    assert "AITASKS_PORT" in run.output
    assert "aitasks: ready." not in run.output
    assert leftovers(run.marker) == []


def test_a_child_that_dies_stops_the_run_with_exit_code_1(tmp_path: Path, backing: Backing) -> None:
    with aitasks_run(tmp_path, **services(backing)) as run:
        run.wait_for_line("aitasks: ready.")
        api = next(
            child for child in run.supervisor().children() if child.cmdline()[-1:] == ["api"]
        )

        api.kill()
        code = run.process.wait(STOP_TIMEOUT_SECONDS)

    assert code == 1
    assert "aitasks: error: the API stopped (signal SIGKILL)" in run.output
    assert leftovers(run.marker) == []
