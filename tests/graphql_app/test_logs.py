"""Structured logs: a JSON line per request (with its request id and operation) and per
task transition (with the task id), and never the prompt."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.fixtures.graphql import CREATE_TASK, poll_until_finished
from tests.fixtures.stack import Process, Stack, wait_until

SECRET_PROMPT = "my diary entry 7f3e9a"


def json_lines(process: Process) -> list[dict[str, Any]]:
    lines = []
    for line in process.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def is_request(line: dict[str, Any], request_id: str) -> bool:
    return line["logger"] == "aitasks.requests" and line.get("request_id") == request_id


def test_requests_and_transitions_are_logged_as_json_without_the_prompt(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(AITASKS_LOG_FORMAT="json")
    worker = stack.start_worker()
    api = stack.start_api()

    response = httpx.post(
        stack.graphql_url,
        json={
            "query": CREATE_TASK,
            "variables": {"input": {"prompt": SECRET_PROMPT, "model": "echo"}},
        },
        headers={"x-request-id": "req-42"},
    )
    task_id = response.json()["data"]["createTask"]["id"]
    assert poll_until_finished(stack, task_id)["status"] == "COMPLETED"

    assert response.headers["x-request-id"] == "req-42"
    request = wait_until(
        lambda: next((line for line in json_lines(api) if is_request(line, "req-42")), None),
        10,
        "the request's log line",
    )
    assert request.get("operation") == "mutation createTask", request
    assert (request["path"], request["status"]) == ("/graphql", 200)
    assert request["level"] == "INFO" and request["duration_ms"] >= 0
    created = [line for line in json_lines(api) if line.get("task_id") == task_id]
    assert [line["status"] for line in created] == ["PENDING"]
    assert created[0]["request_id"] == "req-42"
    worked = [line["status"] for line in json_lines(worker) if line.get("task_id") == task_id]
    assert worked == ["PROCESSING", "COMPLETED"]
    assert SECRET_PROMPT not in api.log() + worker.log()
