"""The terminal client behind `aitasks submit|status|list|cancel`: GraphQL over HTTP and
WebSocket with `gql`, against any running aitasks API.

Exit codes: 0 when the task (or the request) succeeded, 1 when the task ended FAILED or
CANCELLED or the server refused the request, 2 when the server could not be reached.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

TASK_FIELDS = "id kind status progress stage result error model createdAt finishedAt"
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
CANCEL = f"""
mutation Cancel($id: ID!) {{
  cancelTask(id: $id) {{
    __typename
    ... on Task {{ {TASK_FIELDS} }}
    ... on TaskNotFound {{ message }}
    ... on TaskStateError {{ message }}
  }}
}}
"""
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
BAR_WIDTH = 30

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

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


async def execute(server: Server, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    transport = HTTPXAsyncTransport(
        url=server.url, headers=server.headers, timeout=REQUEST_TIMEOUT_SECONDS
    )
    try:
        async with Client(transport=transport) as session:
            result: dict[str, Any] = await session.execute(
                GraphQLRequest(document, variable_values=variables)
            )
            return result
    except TransportQueryError as error:
        raise ClientError(f"the server refused the request: {error}", EXIT_TASK_FAILED) from None
    except (TransportError, OSError) as error:
        reason = str(error) or type(error).__name__
        raise ClientError(f"cannot reach {server.url}: {reason}", EXIT_UNREACHABLE) from None
    except Exception as error:
        # httpx2's connection errors are not OSErrors; any other failure here is the same
        # story for the user: no answer from the server.
        reason = str(error) or type(error).__name__
        raise ClientError(f"cannot reach {server.url}: {reason}", EXIT_UNREACHABLE) from None


def _created(result: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = result["createTask"]
    if created["__typename"] != "Task":
        raise ClientError(f"refused: {created['message']}", EXIT_TASK_FAILED)
    return created


def exit_code_of(task: dict[str, Any]) -> int:
    return EXIT_OK if task["status"] == "COMPLETED" else EXIT_TASK_FAILED


class Progress:
    """Streamed text to `out`; a progress bar on `err` when it is a terminal."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err
        self.shown = 0
        self.bar = err.isatty()

    def text(self, result: str | None) -> None:
        """Print what `result` has beyond what was printed."""
        if result and len(result) > self.shown:
            self._clear_bar()
            self.out.write(result[self.shown :])
            self.out.flush()
            self.shown = len(result)

    def status(self, progress: float, stage: str | None, status: str) -> None:
        if self.bar:
            filled = int(progress * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.err.write(f"\r[{bar}] {progress:4.0%} {status} {stage or ''}".ljust(79))
            self.err.flush()

    def _clear_bar(self) -> None:
        if self.bar:
            self.err.write("\r" + " " * 79 + "\r")

    def end(self, task: dict[str, Any]) -> None:
        self._clear_bar()
        if self.shown:
            self.out.write("\n")
        detail = f": {task['error']}" if task.get("error") else ""
        self.err.write(f"aitasks: task {task['id']} {task['status']}{detail}\n")


async def _watch_live(server: Server, task_id: str, progress: Progress) -> dict[str, Any]:
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
            progress.text(update["task"]["result"])
            progress.status(update["progress"], update["stage"], update["status"])
            last = {"id": task_id, "status": update["status"], "error": update["task"]["error"]}
    return last


async def _watch_polling(server: Server, task_id: str, progress: Progress) -> dict[str, Any]:
    while True:
        task = (await execute(server, GET, {"id": task_id}))["task"]
        if task is None:
            raise ClientError(f"no task with id {task_id}", EXIT_TASK_FAILED)
        progress.text(task["result"])
        progress.status(task["progress"], task["stage"], task["status"])
        if task["status"] in TERMINAL:
            return dict(task)
        await asyncio.sleep(POLL_SECONDS)


async def watch(server: Server, task_id: str, progress: Progress) -> dict[str, Any]:
    """Follow a task to its end over the subscription; poll if the WebSocket fails."""
    try:
        task = await _watch_live(server, task_id, progress)
        if task.get("status") in TERMINAL:
            return task
    except Exception as error:
        progress.err.write(f"aitasks: live updates unavailable ({error}); polling instead\n")
    return await _watch_polling(server, task_id, progress)


async def submit(
    server: Server, task_input: dict[str, Any], *, follow: bool, out: TextIO, err: TextIO
) -> int:
    task = _created(await execute(server, CREATE, {"input": task_input}))
    err.write(f"aitasks: created task {task['id']} ({task['status']})\n")
    if not follow:
        out.write(task["id"] + "\n")
        return EXIT_OK
    progress = Progress(out, err)
    final = await watch(server, task["id"], progress)
    progress.end(final)
    return exit_code_of(final)


def describe(task: dict[str, Any]) -> str:
    finished = f" finished {task['finishedAt']}" if task.get("finishedAt") else ""
    return (
        f"{task['id']}  {task['status']:<10} {task['progress']:4.0%}  {task['kind']}  "
        f"{task['model']}  created {task['createdAt']}{finished}"
    )


async def status(server: Server, task_id: str, out: TextIO) -> int:
    task = (await execute(server, GET, {"id": task_id}))["task"]
    if task is None:
        raise ClientError(f"no task with id {task_id}", EXIT_TASK_FAILED)
    out.write(describe(task) + "\n")
    if task.get("error"):
        out.write(f"error: {task['error']}\n")
    if task.get("result"):
        out.write(task["result"] + "\n")
    return EXIT_OK


async def list_tasks(server: Server, first: int, status_filter: str | None, out: TextIO) -> int:
    result = await execute(server, LIST, {"first": first, "status": status_filter})
    for edge in result["tasks"]["edges"]:
        out.write(describe(edge["node"]) + "\n")
    return EXIT_OK


async def cancel(server: Server, task_id: str, out: TextIO) -> int:
    result = (await execute(server, CANCEL, {"id": task_id}))["cancelTask"]
    if result["__typename"] != "Task":
        raise ClientError(result["message"], EXIT_TASK_FAILED)
    out.write(describe(result) + "\n")
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
