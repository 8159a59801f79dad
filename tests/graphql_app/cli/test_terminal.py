"""The terminal client (`aitasks submit|status|list|cancel|retry`) against a running API,
run as a user runs it: in a pseudo-terminal (the screen it leaves, read with pyte) and
in a pipe."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte
import pytest

from tests.fixtures.graphql import create_task
from tests.fixtures.keys import new_key
from tests.fixtures.stack import Stack, free_port

# Two short lines and one longer than a narrow screen, so the view must wrap it.
ANSWER_LINES = [
    "Echo: first line of the answer",
    "second line",
    "a long line " + "that keeps going " * 6 + "to its end",
]
PROMPT = "\n".join(ANSWER_LINES).removeprefix("Echo: ")
TERMINAL_TIMEOUT_SECONDS = 90


def aitasks(
    stack: Stack,
    *args: str,
    url: str | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "AITASKS_API_URL": url or stack.api_url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )


def final_screen(stack: Stack, columns: int, *args: str) -> tuple[list[str], int]:
    """Run `aitasks` in a pseudo-terminal of `columns` x 40; the screen it leaves."""
    env = {**stack.env, "AITASKS_API_URL": stack.api_url, "TERM": "xterm-256color"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "graphql_app.cli", *args],
        env=env,
        dimensions=(40, columns),
        timeout=TERMINAL_TIMEOUT_SECONDS,
    )
    screen = pyte.Screen(columns, 40)
    stream = pyte.ByteStream(screen)
    stream.feed(child.read())
    child.close()
    return screen.display, child.exitstatus


def assert_whole_answer_on(display: list[str], columns: int) -> None:
    rows = [row.rstrip() for row in display]
    assert ANSWER_LINES[0] in rows and ANSWER_LINES[1] in rows, "\n".join(rows)
    # The long line fills whole rows, as the terminal would wrap it.
    assert ANSWER_LINES[2] in "".join(display), "\n".join(rows)


def test_submit_watch_in_a_terminal_leaves_the_whole_answer_and_a_finished_bar(
    stack: Stack,
) -> None:
    display, code = final_screen(stack, 80, "submit", PROMPT, "--model", "slow-echo", "--watch")

    assert code == 0
    assert_whole_answer_on(display, 80)
    bars = [row for row in display if "100%" in row]
    assert len(bars) == 1 and "COMPLETED" in bars[0], "\n".join(display)
    assert not [row for row in display if "%" in row and "100%" not in row]


def test_submit_watch_on_a_narrow_terminal_wraps_the_answer_and_keeps_the_bar(
    stack: Stack,
) -> None:
    display, code = final_screen(stack, 36, "submit", PROMPT, "--model", "slow-echo", "--watch")

    assert code == 0
    assert_whole_answer_on(display, 36)
    assert len([row for row in display if "100%" in row]) == 1, "\n".join(display)


def test_submit_watch_into_a_pipe_prints_just_the_text(stack: Stack) -> None:
    finished = aitasks(stack, "submit", PROMPT, "--model", "slow-echo", "--watch")

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "\n".join(ANSWER_LINES) + "\n"
    assert "\x1b" not in finished.stdout + finished.stderr
    assert "COMPLETED" in finished.stderr


def test_submit_reads_the_prompt_from_stdin_given_a_dash(stack: Stack) -> None:
    finished = aitasks(stack, "submit", "-", "--model", "echo", "--watch", stdin="From a pipe")

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "Echo: From a pipe\n"


def test_submit_watch_exits_1_when_the_task_fails(stack: Stack) -> None:
    finished = aitasks(stack, "submit", "Let me in", "--model", "unauthorized", "--watch")

    assert finished.returncode == 1
    assert "FAILED" in finished.stderr


def test_submit_a_data_file_with_params_from_a_file(stack: Stack, tmp_path: Path) -> None:
    table = tmp_path / "sales.csv"
    table.write_text("region,amount\nnorth,3\nsouth,5\nnorth,4\n")
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps({"groupBy": [{"by": ["region"], "aggregations": {"amount": ["sum"]}}]})
    )

    finished = aitasks(
        stack, "submit", "--file", str(table), "--params", f"@{params}", "--watch", "--json"
    )

    assert finished.returncode == 0, finished.stderr
    task = json.loads(finished.stdout)
    assert task["kind"] == "DATA_ANALYSIS" and task["status"] == "COMPLETED"
    assert "north" in task["result"]


def test_submit_refuses_bad_params_json_before_sending(stack: Stack) -> None:
    finished = aitasks(stack, "submit", "Hi", "--params", "{not json")

    assert finished.returncode == 2
    assert "--params" in finished.stderr and "not valid JSON" in finished.stderr


def test_submit_of_an_image_kind_without_a_file_says_what_is_missing(stack: Stack) -> None:
    finished = aitasks(stack, "submit", "--kind", "IMAGE_PROCESSING")

    assert finished.returncode == 2
    assert "--kind IMAGE_PROCESSING needs --file PATH" in finished.stderr


def test_a_stopped_server_exits_2_with_a_one_line_reason(stack: Stack) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    finished = aitasks(stack, "submit", "Anyone there?", "--watch", url=nowhere)

    assert finished.returncode == 2
    assert finished.stderr.startswith("aitasks: cannot reach")
    assert "AITASKS_API_URL" in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1


def test_status_list_cancel_and_retry_say_what_happened(stack: Stack) -> None:
    task = create_task(stack, prompt="Wait for me", model="echo", delaySeconds=3600)

    status = aitasks(stack, "status", task["id"])
    listed = aitasks(stack, "list", "--status", "PENDING", "--first", "100")
    cancelled = aitasks(stack, "cancel", task["id"])
    retried = aitasks(stack, "retry", task["id"], "--watch")
    unknown = aitasks(stack, "status", "not-a-task")

    assert status.returncode == 0 and "PENDING" in status.stdout
    assert listed.stdout.split()[:3] == ["ID", "STATUS", "DONE"]
    assert task["id"] in listed.stdout
    assert cancelled.returncode == 0
    assert "CANCELLED" in cancelled.stdout and "will not run" in cancelled.stdout
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == "Echo: Wait for me\n"
    assert unknown.returncode == 1 and "no task with id" in unknown.stderr


def test_status_watch_follows_a_running_task_to_its_end(stack: Stack) -> None:
    task = create_task(stack, prompt="Follow me", model="slow-echo")

    followed = aitasks(stack, "status", task["id"], "--watch")

    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "Echo: Follow me\n"


def test_list_json_is_a_list_of_tasks(stack: Stack) -> None:
    task = create_task(stack, prompt="Listed", model="echo")

    listed = aitasks(stack, "list", "--json", "--first", "100")

    assert listed.returncode == 0, listed.stderr
    assert task["id"] in [listed_task["id"] for listed_task in json.loads(listed.stdout)]


def test_client_commands_print_no_library_log_lines(stack: Stack) -> None:
    listed = aitasks(stack, "list", "--first", "1")

    assert listed.returncode == 0
    assert "INFO" not in listed.stderr and "HTTP Request" not in listed.stderr


@pytest.fixture(scope="module")
def secured(make_stack: Callable[..., Stack]) -> Stack:
    """A stack that requires API keys, with no tasks."""
    stack = make_stack(AITASKS_AUTH="on", AITASKS_AUTH_CACHE_SECONDS="0")
    stack.start_api()
    return stack


def test_a_new_callers_list_has_an_empty_state_line(secured: Stack) -> None:
    key = new_key(secured, "newcomer")

    listed = aitasks(secured, "list", "--key", key)

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "No tasks yet. Create one: aitasks submit 'Hello'\n"


def test_a_wrong_key_is_one_line_saying_which_variable_to_set(secured: Stack) -> None:
    refused = aitasks(secured, "list", "--key", "ait_not-a-key")

    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "refused the key" in refused.stderr and "AITASKS_API_KEY" in refused.stderr


def test_the_old_key_variable_still_works_with_a_deprecation_line(secured: Stack) -> None:
    key = new_key(secured, "old-habits")

    listed = aitasks(secured, "list", env={"AITASKS_KEY": key})

    assert listed.returncode == 0, listed.stderr
    assert "AITASKS_KEY is deprecated; set AITASKS_API_KEY instead" in listed.stderr


class NotOurs(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(401)
        self.end_headers()
        self.wfile.write(b"who are you?")

    def log_message(self, *args: object) -> None:
        pass


def test_another_program_on_the_port_is_named_as_such(stack: Stack) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotOurs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        finished = aitasks(stack, "list", url=url)
    finally:
        server.shutdown()
        server.server_close()

    assert finished.returncode == 2
    assert "not as an aitasks API (HTTP 401)" in finished.stderr
    assert "AITASKS_API_URL" in finished.stderr
