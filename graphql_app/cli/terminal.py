"""The terminal client behind `aitasks submit|status|list|cancel|retry`: GraphQL over HTTP
and WebSocket with `gql`, against any running aitasks API.

Exit codes: 0 when the task (or the request) succeeded, 1 when the task ended FAILED or
CANCELLED or the server refused the request, 2 when no aitasks API could be reached.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gql import Client, FileVar, GraphQLRequest
from gql.transport.exceptions import (
    TransportError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from graphql_app.cli.live import LiveView

TASK_FIELDS = "id kind status progress stage result error model attempts createdAt finishedAt"
CREATE = f"""
mutation Create($input: CreateTaskInput!) {{
  createTask(input: $input) {{
    __typename
    ... on Task {{ {TASK_FIELDS} }}
    ... on ValidationError {{ field message }}
    ... on RateLimited {{ message retryAfterSeconds }}
  }}
}}
"""
GET = f"query Get($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}"
LIST = f"""
query List($first: Int, $status: TaskStatus) {{
  tasks(first: $first, status: $status) {{ edges {{ node {{ {TASK_FIELDS} }} }} }}
}}
"""
CONTROL_RESULT = f"""
    __typename
    ... on Task {{ {TASK_FIELDS} }}
    ... on TaskNotFound {{ message }}
    ... on TaskStateError {{ status message }}
"""
CANCEL = f"mutation Cancel($id: ID!) {{ cancelTask(id: $id) {{ {CONTROL_RESULT} }} }}"
RETRY = f"mutation Retry($id: ID!) {{ retryTask(id: $id) {{ {CONTROL_RESULT} }} }}"
WATCH = """
subscription Watch($id: ID!, $after: Int) {
  taskStatus(id: $id, after: $after) { sequence status progress stage delta task { result error } }
}
"""
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
# Requests give up after this long; a watch has no overall limit (Ctrl-C stops it).
REQUEST_TIMEOUT_SECONDS = 30
# How often the polling fallback asks.
POLL_SECONDS = 1.0
# The API refuses a multipart upload without this header (a browser form cannot set it).
PREFLIGHT_HEADER = {"GraphQL-Require-Preflight": "1"}

EXIT_OK, EXIT_TASK_FAILED, EXIT_UNREACHABLE = 0, 1, 2


class ClientError(Exception):
    """A one-line reason the command failed, with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Server:
    url: str
    key: str | None
    # Where the key came from, for the message when the API refuses it.
    key_source: str = "AITASKS_API_KEY"

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


@dataclass
class Output:
    """Where a command writes: `out` for results, `err` for notes; `json` for scripts."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    json: bool = False

    def note(self, message: str) -> None:
        self.err.write(f"aitasks: {message}\n")
        self.err.flush()

    def data(self, value: Any) -> None:
        self.out.write(json.dumps(value, indent=2) + "\n")


def _refused(server: Server, error: TransportQueryError) -> ClientError:
    first = (error.errors or [{}])[0]
    code = (first.get("extensions") or {}).get("code")
    if code == "UNAUTHENTICATED":
        if server.key is None:
            return ClientError(
                f"the API at {server.url} needs a key: set AITASKS_API_KEY to one from "
                "`aitasks keys create --name NAME` (`aitasks run` makes one for you)",
                EXIT_TASK_FAILED,
            )
        return ClientError(
            f"the API at {server.url} refused the key (from {server.key_source}) as unknown "
            "or revoked: set AITASKS_API_KEY to a valid one; `aitasks keys list` shows them",
            EXIT_TASK_FAILED,
        )
    message = first.get("message") or str(error)
    return ClientError(f"the server refused the request: {message}", EXIT_TASK_FAILED)


def _not_aitasks(server: Server, error: TransportError) -> ClientError:
    status = getattr(error, "code", None)
    answer = f"HTTP {status}" if status else "not a GraphQL answer"
    return ClientError(
        f"{server.url} answered, but not as an aitasks API ({answer}): another program may "
        "hold that port; set AITASKS_API_URL to the API's address",
        EXIT_UNREACHABLE,
    )


async def execute(
    server: Server, document: str, variables: dict[str, Any], *, upload: bool = False
) -> dict[str, Any]:
    headers = {**server.headers, **(PREFLIGHT_HEADER if upload else {})}
    transport = HTTPXAsyncTransport(
        url=server.url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
    )
    try:
        async with Client(transport=transport) as session:
            request = GraphQLRequest(document, variable_values=variables)
            result: dict[str, Any] = await session.execute(request, upload_files=upload)
            return result
    except TransportQueryError as error:
        raise _refused(server, error) from None
    except TransportServerError as error:
        raise _not_aitasks(server, error) from None
    except TransportError as error:
        if "json" in str(error).lower() or "not a valid" in str(error).lower():
            raise _not_aitasks(server, error) from None
        raise _unreachable(server, error) from None
    except Exception as error:
        # httpx2's connection errors are not OSErrors; any other failure here is the same
        # story for the user: no answer from the server.
        raise _unreachable(server, error) from None


def _unreachable(server: Server, error: Exception) -> ClientError:
    reason = str(error) or type(error).__name__
    return ClientError(
        f"cannot reach {server.url} ({reason}): start the service with `make run`, or set "
        "AITASKS_API_URL to where it runs",
        EXIT_UNREACHABLE,
    )


def exit_code_of(task: dict[str, Any]) -> int:
    return EXIT_OK if task["status"] == "COMPLETED" else EXIT_TASK_FAILED


async def _watch_live(server: Server, task_id: str, view: LiveView) -> dict[str, Any]:
    transport = WebsocketsTransport(
        url=server.ws_url,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"authorization": f"Bearer {server.key}"} if server.key else {},
        ping_interval=10,
    )
    last: dict[str, Any] = {}
    async with Client(transport=transport) as session:
        request = GraphQLRequest(WATCH, variable_values={"id": task_id})
        async for result in session.subscribe(request):
            update = result["taskStatus"]
            view.update(
                update["task"]["result"], update["progress"], update["status"], update["stage"]
            )
            last = {"id": task_id, "status": update["status"], "error": update["task"]["error"]}
    return last


async def _watch_polling(server: Server, task_id: str, view: LiveView) -> dict[str, Any]:
    while True:
        task = await _get(server, task_id)
        view.update(task["result"], task["progress"], task["status"], task["stage"])
        if task["status"] in TERMINAL:
            return task
        await asyncio.sleep(POLL_SECONDS)


async def _get(server: Server, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] | None = (await execute(server, GET, {"id": task_id}))["task"]
    if task is None:
        raise ClientError(f"no task with id {task_id}: `aitasks list` shows yours", 1)
    return task


async def watch(server: Server, task_id: str, output: Output) -> int:
    """Follow a task to its end over the subscription (polling if the WebSocket fails),
    showing its streamed text and a progress bar; the exit code says how it ended."""
    if output.json:
        final = await _watch_quietly(server, task_id)
        output.data(final)
        return exit_code_of(final)
    view = LiveView(output.out, output.err)
    with view:
        try:
            ended = await _watch_live(server, task_id, view)
        except Exception as error:
            ended = {}
            output.note(f"live updates unavailable ({error}); polling instead")
        if ended.get("status") not in TERMINAL:
            ended = await _watch_polling(server, task_id, view)
        view.finish(ended["status"])
    detail = f": {ended['error']}" if ended.get("error") else ""
    output.note(f"task {task_id} {ended['status']}{detail}")
    return exit_code_of(ended)


async def _watch_quietly(server: Server, task_id: str) -> dict[str, Any]:
    while True:
        task = await _get(server, task_id)
        if task["status"] in TERMINAL:
            return task
        await asyncio.sleep(POLL_SECONDS)


def _file_input(path: Path) -> dict[str, Any]:
    return {"name": path.name, "upload": FileVar(str(path))}


async def submit(
    server: Server,
    task_input: dict[str, Any],
    *,
    files: list[Path],
    follow: bool,
    output: Output,
) -> int:
    """Create a task; print its id (or, with `follow`, watch it to its end)."""
    if files:
        task_input = {**task_input, "files": [_file_input(path) for path in files]}
    result = await execute(server, CREATE, {"input": task_input}, upload=bool(files))
    created: dict[str, Any] = result["createTask"]
    if created["__typename"] == "ValidationError":
        raise ClientError(f"refused: {created['message']}", EXIT_TASK_FAILED)
    if created["__typename"] != "Task":
        raise ClientError(f"refused: {created['message']}", EXIT_TASK_FAILED)
    if follow:
        if not output.json:
            output.note(f"created task {created['id']}")
        return await watch(server, created["id"], output)
    if output.json:
        output.data(created)
    else:
        output.out.write(created["id"] + "\n")
        output.note(f"created task {created['id']}; follow it: aitasks status --watch ID")
    return EXIT_OK


COLUMNS = ("ID", "STATUS", "DONE", "KIND", "MODEL", "CREATED")


def _row(task: dict[str, Any]) -> tuple[str, ...]:
    created = str(task["createdAt"])[:19].replace("T", " ")
    return (
        task["id"],
        task["status"],
        f"{task['progress']:.0%}",
        task["kind"],
        task["model"],
        created,
    )


def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


async def status(server: Server, task_id: str, output: Output) -> int:
    """Show a task: status, progress, error and result."""
    task = await _get(server, task_id)
    if output.json:
        output.data(task)
        return EXIT_OK
    for line in table([COLUMNS, _row(task)]):
        output.out.write(line + "\n")
    if task.get("stage") and task["status"] == "PROCESSING":
        output.out.write(f"stage: {task['stage']}\n")
    if task.get("error"):
        output.out.write(f"error: {task['error']}\n")
    if task.get("result"):
        output.out.write(task["result"].rstrip("\n") + "\n")
    return EXIT_OK


async def list_tasks(server: Server, first: int, status_filter: str | None, output: Output) -> int:
    """Your tasks, newest first, as a table with a header."""
    result = await execute(server, LIST, {"first": first, "status": status_filter})
    tasks = [edge["node"] for edge in result["tasks"]["edges"]]
    if output.json:
        output.data(tasks)
        return EXIT_OK
    if not tasks:
        which = f"{status_filter} tasks" if status_filter else "tasks yet"
        output.out.write(f"No {which}. Create one: aitasks submit 'Hello'\n")
        return EXIT_OK
    for line in table([COLUMNS, *(_row(task) for task in tasks)]):
        output.out.write(line + "\n")
    return EXIT_OK


def _controlled(result: dict[str, Any]) -> dict[str, Any]:
    if result["__typename"] != "Task":
        raise ClientError(result["message"], EXIT_TASK_FAILED)
    return result


def _cancel_story(task: dict[str, Any]) -> str:
    task_id = task["id"]
    if task["status"] == "CANCELLED":
        return (
            f"task {task_id} is CANCELLED: it will not run "
            f"(`aitasks retry {task_id}` queues it again)"
        )
    return (
        f"cancelling task {task_id} ({task['status']} at {task['progress']:.0%}): it stops "
        f"within about a second and ends CANCELLED, keeping its output so far; follow it "
        f"with `aitasks status --watch {task_id}`"
    )


async def cancel(server: Server, task_id: str, output: Output) -> int:
    """Cancel a task and say what happens to it."""
    task = _controlled((await execute(server, CANCEL, {"id": task_id}))["cancelTask"])
    if output.json:
        output.data(task)
    else:
        output.out.write(_cancel_story(task) + "\n")
    return EXIT_OK


async def retry(server: Server, task_id: str, *, follow: bool, output: Output) -> int:
    """Queue a FAILED or CANCELLED task again; with `follow`, watch it."""
    task = _controlled((await execute(server, RETRY, {"id": task_id}))["retryTask"])
    if follow:
        return await watch(server, task_id, output)
    if output.json:
        output.data(task)
    else:
        output.out.write(
            f"task {task_id} is queued again ({task['status']}); follow it with "
            f"`aitasks status --watch {task_id}`\n"
        )
    return EXIT_OK


def run(coroutine: Any) -> int:
    """Run a command; a ClientError becomes its one-line reason on stderr and exit code."""
    started = time.monotonic()
    try:
        code: int = asyncio.run(coroutine)
        return code
    except ClientError as error:
        sys.stderr.write(f"aitasks: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"aitasks: stopped after {time.monotonic() - started:.0f} s\n")
        return EXIT_TASK_FAILED
