"""The terminal client (`aitasks submit|status|list|cancel`) against a running API."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.graphql import create_task
from tests.fixtures.stack import Stack, free_port


def aitasks(stack: Stack, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "AITASKS_API_URL": url or stack.graphql_url}
    return subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_submit_watch_prints_the_streamed_answer_and_exits_0(stack: Stack) -> None:
    finished = aitasks(stack, "submit", "Hello from the terminal", "--model", "echo", "--watch")

    assert finished.returncode == 0, finished.stderr
    assert "Echo: Hello from the terminal" in finished.stdout
    assert "COMPLETED" in finished.stderr


def test_submit_watch_exits_1_when_the_task_fails(stack: Stack) -> None:
    finished = aitasks(stack, "submit", "Let me in", "--model", "unauthorized", "--watch")

    assert finished.returncode == 1
    assert "FAILED" in finished.stderr


def test_a_stopped_server_exits_2_with_a_one_line_reason(stack: Stack) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/graphql"

    finished = aitasks(stack, "submit", "Anyone there?", "--watch", url=nowhere)

    assert finished.returncode == 2
    assert finished.stderr.startswith("aitasks: cannot reach")
    assert len(finished.stderr.strip().splitlines()) == 1


def test_status_list_and_cancel(stack: Stack) -> None:
    task = create_task(stack, prompt="Wait for me", delaySeconds=3600)

    status = aitasks(stack, "status", task["id"])
    listed = aitasks(stack, "list", "--status", "PENDING", "--first", "100")
    cancelled = aitasks(stack, "cancel", task["id"])
    unknown = aitasks(stack, "status", "not-a-task")

    assert status.returncode == 0 and "PENDING" in status.stdout
    assert task["id"] in listed.stdout
    assert cancelled.returncode == 0 and "CANCELLED" in cancelled.stdout
    assert unknown.returncode == 1 and "no task with id" in unknown.stderr
