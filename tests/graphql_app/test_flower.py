"""Flower runs on our Celery app and shows tasks: names, arguments (a task id, nothing
secret) and states."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.graphql import create_task, poll_until_finished
from tests.fixtures.stack import Process, Stack, free_port, spawn, wait_until

START_SECONDS = 30.0


@pytest.fixture
def flower(stack: Stack) -> Iterator[str]:
    port = free_port()
    # Flower's JSON API wants a login unless told otherwise; its web pages do not.
    env = {**stack.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    process: Process = spawn("flower", ["flower", "--port", str(port)], env, stack.log_dir)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.popen.poll() is None, process.log()
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/api/workers", timeout=2).status_code == 200
        return False

    try:
        wait_until(answers, START_SECONDS, "Flower to answer")
        yield url
    finally:
        process.terminate()
        process.wait_stopped()


def test_flower_shows_task_names_arguments_and_states(stack: Stack, flower: str) -> None:
    task = create_task(stack, prompt="Seen by Flower, prompt not", model="echo")
    assert poll_until_finished(stack, task["id"])["status"] == "COMPLETED"

    def seen() -> dict[str, Any] | None:
        tasks = httpx.get(f"{flower}/api/tasks", timeout=5).json()
        return next(
            (entry for entry in tasks.values() if task["id"] in str(entry.get("args"))), None
        )

    entry = wait_until(seen, 20, "Flower to show the task")
    assert entry["name"] == "aitasks.text_generation"
    assert entry["state"] == "SUCCESS"
    assert "prompt not" not in str(entry)
