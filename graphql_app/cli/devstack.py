"""Where the servers of a running `aitasks run` are, for the commands that need them.

`aitasks run` writes a small JSON file into the data directory once everything answers
(readable by this user only: the database URL may carry a password) and removes it when
it stops. `aitasks inspect`, `worker-health`, `flower`, `mcp`, `keys` and the task
commands read it when nothing else says where the servers are.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

STACK_FILE = "stack.json"


@dataclass(frozen=True)
class DevStack:
    pid: int
    # The supervisor's start time, so that a reused pid is not taken for it.
    started: float
    api_url: str
    database_url: str
    redis_url: str


def path_in(data_dir: Path) -> Path:
    return data_dir.resolve() / STACK_FILE


def write(data_dir: Path, stack: DevStack) -> Path:
    path = path_in(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # A file left by an older run keeps its mode through O_CREAT: set it again.
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(asdict(stack), file)
    return path


def remove(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path_in(data_dir).unlink()


def process_started(pid: int) -> float:
    return psutil.Process(pid).create_time()


def find(data_dir: Path) -> DevStack | None:
    """The stack `aitasks run` announced in `data_dir`, if its supervisor still runs."""
    try:
        stack = DevStack(**json.loads(path_in(data_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    try:
        alive = process_started(stack.pid) == stack.started
    except psutil.Error:
        alive = False
    return stack if alive else None
