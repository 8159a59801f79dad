"""`make run` on a machine with no database or Redis configured: embedded servers, a task
that completes, and nothing left running after Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

import psutil

from tests.fixtures.graphql import create_task, poll_until_finished
from tests.fixtures.stack import Stack, free_port, wait_until

ROOT = Path(__file__).parent.parent.parent
START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 40


KEY_LINE = "API key (development):"


def leftovers(session_id: int, data_dir: Path) -> list[str]:
    """Processes of the `make run` session, or working on its data (the embedded Redis
    runs in its data folder, which names no path on its command line)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            command = " ".join(process.info["cmdline"] or [])
            if (
                os.getsid(process.pid) == session_id
                or str(data_dir) in command
                or str(data_dir) in (process.info["cwd"] or "")
            ):
                found.append(f"{process.pid}: {command}")
    return found


def test_make_run_serves_a_task_and_ctrl_c_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AITASKS_", "OPENAI_"))
    }
    env.update(
        AITASKS_PORT=str(port),
        AITASKS_DATA_DIR=str(data_dir),
        AITASKS_DEMO_DURATION_SECONDS="0.5",
        PYTHONUNBUFFERED="1",
    )
    make = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(make.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: any(KEY_LINE in line for line in output) or make.poll() is not None,
            START_TIMEOUT_SECONDS,
            "make run to print the GraphiQL URL and a development key",
        )
        assert make.poll() is None, "".join(output)
        assert f"http://127.0.0.1:{port}/graphql" in "".join(output)
        key = next(line for line in output if KEY_LINE in line).split(KEY_LINE)[1].strip()
        stack = Stack("", "", env, tmp_path, api_url=f"http://127.0.0.1:{port}", key=key)

        task = create_task(stack, prompt="Hello from make run")
        final = poll_until_finished(stack, task["id"])

        assert final["status"] == "COMPLETED"
        assert "demo model" in final["result"]
    finally:
        # Ctrl-C in a terminal interrupts the whole foreground process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGINT)
        make.wait(STOP_TIMEOUT_SECONDS)
        reader.join(5)
        if make.stdout:
            make.stdout.close()

    assert "aitasks: stopped" in "".join(output)
    assert leftovers(make.pid, data_dir) == []
    assert_quiet(output)


# Lines a newcomer should never see in `make run`'s output: Celery's banner and its root
# warning, uvicorn's colour codes as text, a shell's complaint about a missing Python.
NOISE = ("[color_message=", "SecurityWarning", "-------------- ", "command not found", "\x1b[")
SCREEN_LINES = 50


def assert_quiet(output: list[str]) -> None:
    """Up to the end of the "ready" banner, the output fits on one screen; none of it is
    noise."""
    banner_end = next(index for index, line in enumerate(output) if "press Ctrl-C" in line)
    shown = "".join(output)
    assert banner_end < SCREEN_LINES, shown
    assert not [line for line in output if any(noise in line for noise in NOISE)], shown
