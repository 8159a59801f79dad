"""Child processes of a benchmark run: the API, workers, and load generators ("agents").

Each child runs in a session of its own, so it and whatever it starts can be killed as a
group, and gets SIGTERM if the runner dies (see `bench.process_limits.exit_with_parent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.process_limits import PARENT_PID_VARIABLE

# How long a child may take to stop after SIGTERM (an API closes its sockets) before
# it is killed.
STOP_TIMEOUT_SECONDS = 15.0
# One message from an agent is one line of JSON; receipts of 10,000 updates make a long one.
MESSAGE_LIMIT_BYTES = 64 * 1024 * 1024
LOG_TAIL_LINES = 30


class ChildFailed(Exception):
    """A child process exited or reported an error; the message has its log's tail."""


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def failure(self, what: str) -> ChildFailed:
        return ChildFailed(
            f"{self.name} {what}; its log ({self.log_path}) ends:\n{self.log_tail()}"
        )

    async def stop(self, grace: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM, then SIGKILL to the whole group after `grace` seconds or once it exits."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def interrupt(self, grace: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGINT, and wait (for a profiler to write what it recorded)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """This environment without any AITASKS_/OPENAI_ variable, plus `settings`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AITASKS_", "OPENAI_"))
    }
    env.update(settings)
    env[PARENT_PID_VARIABLE] = str(os.getpid())
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def spawn(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, *, piped: bool = False
) -> Child:
    """Start `python <args>`; output goes to a log file, or stdout to a pipe if `piped`."""
    return await spawn_program(name, [sys.executable, *args], log_dir, env=env, piped=piped)


async def spawn_program(
    name: str,
    command: list[str],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    piped: bool = False,
) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            stdin=asyncio.subprocess.PIPE if piped else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if piped else log,
            stderr=log,
            start_new_session=True,
            limit=MESSAGE_LIMIT_BYTES,
        )
    return Child(name, process, log_path)


class Agent:
    """A load generator in its own process, driven by JSON lines on its stdin and stdout.

    The first line it reads is its parameters; then each command gets one reply, an
    event named by the agent. An agent whose stdin closes stops.
    """

    def __init__(self, child: Child) -> None:
        self.child = child

    @classmethod
    async def start(
        cls, name: str, module: str, params: dict[str, Any], env: dict[str, str], log_dir: Path
    ) -> Agent:
        agent = cls(await spawn(name, ["-m", module], env, log_dir, piped=True))
        await agent._write(params)
        return agent

    async def send(self, command: str, **args: Any) -> None:
        await self._write({"command": command, **args})

    async def _write(self, message: dict[str, Any]) -> None:
        stdin = self.child.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(message).encode() + b"\n")
        await stdin.drain()

    async def expect(self, event: str, within: float) -> dict[str, Any]:
        """The next message, which must be `event` and come `within` seconds."""
        stdout = self.child.process.stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), within)
        except TimeoutError:
            raise self.child.failure(f"sent no {event!r} within {within:g} s") from None
        if not line:
            await self.child.process.wait()
            raise self.child.failure(f"exited (code {self.child.process.returncode})")
        message: dict[str, Any] = json.loads(line)
        if message.get("event") != event:
            raise self.child.failure(f"answered {message.get('event')!r}: {message}")
        return message

    async def request(self, command: str, reply: str, within: float, **args: Any) -> dict[str, Any]:
        await self.send(command, **args)
        return await self.expect(reply, within)

    async def stop(self) -> None:
        stdin = self.child.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        await self.child.stop()
