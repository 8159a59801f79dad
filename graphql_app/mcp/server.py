"""The MCP server: tasks as tools for AI agents, over streamable HTTP at `/mcp` in the API
process, or over stdio (`aitasks mcp`).

Every tool calls the same services the GraphQL resolvers call (`tasks.services.submission`,
`tasks.services.watching`); this module only translates. Agents use the same API keys as GraphQL
callers and see only their own tasks.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
from cachetools import LRUCache
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from graphql_app.auth import admit, authenticate, bearer
from persistence import models
from persistence.models import TaskPriority, TaskStatus
from persistence.settings import Settings
from persistence.unit_of_work import connection_unit, unit_of_work
from schema.context import Services
from tasks.errors import AitasksError
from tasks.kinds import DEFAULT_KIND, TaskKind
from tasks.services import submission
from tasks.services.callers import Caller
from tasks.services.watching import Update, watch_task

SERVER_NAME = "aitasks"
INSTRUCTIONS = (
    "Long-running AI work. create_task queues a task and answers at once (PENDING); "
    "wait_for_task follows it to its end with progress notifications; get_task and "
    "list_tasks read, cancel_task stops one. The task://{task_id} resource is its state."
)
MCP_PATH = "/mcp"
# A tool call holds its HTTP response (or the stdio client) open while it waits, and MCP
# clients commonly give up on a call after a few minutes: past this, wait_for_task
# answers with the state so far and the agent calls it again.
WAIT_MAX_SECONDS = 600.0
WAIT_DEFAULT_SECONDS = 300.0
LIST_DEFAULT_SIZE = 20
# The header that carries a streamable-HTTP session's id.
SESSION_HEADER = "mcp-session-id"
UNAUTHENTICATED_MESSAGE = (
    "An API key is needed: send `Authorization: Bearer <key>` (create one with "
    "`aitasks keys create --name NAME`)."
)

# Who calls a tool: the owner name its tasks belong to.
OwnerOf = Callable[[Context], Awaitable[str]]


class Task(BaseModel):
    """A task as an agent sees it: the GraphQL `Task`'s main fields."""

    id: str
    kind: TaskKind
    status: TaskStatus
    model: str
    prompt: str
    priority: TaskPriority
    progress: float = Field(description="From 0 to 1; 1 once COMPLETED.")
    stage: str | None = Field(description="What the work is doing now, in a few words.")
    result: str | None = Field(description="The output: the text so far, then all of it.")
    error: str | None
    output: dict[str, Any] | None = Field(description="Structured results once COMPLETED.")
    attempts: int
    sequence: int = Field(description="Counts the task's changes.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_model(cls, task: models.Task) -> Task:
        return cls(
            id=str(task.id),
            kind=TaskKind(task.kind),
            status=task.status,
            model=task.model,
            prompt=task.prompt,
            priority=task.priority,
            progress=task.progress,
            stage=task.stage,
            result=task.result,
            error=task.error,
            output=task.output,
            attempts=task.attempts,
            sequence=task.sequence,
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


class TaskPage(BaseModel):
    tasks: list[Task] = Field(description="Newest first.")
    has_more: bool = Field(description="Whether older tasks follow.")


class WaitedTask(BaseModel):
    task: Task
    finished: bool = Field(description="Whether the task reached COMPLETED, FAILED or CANCELLED.")
    note: str | None = Field(None, description="Why the wait ended before the task did.")


def _http_owner(services: Services) -> OwnerOf:
    async def owner(ctx: Context) -> str:
        # Only the header: a cookie is something a browser sends on its own.
        headers = ctx.headers or {}
        caller = await authenticate(services, bearer(headers.get("authorization")))
        if caller is None:
            raise ToolError(UNAUTHENTICATED_MESSAGE)
        return caller.name

    return owner


def _fixed_owner(caller: Caller) -> OwnerOf:
    async def owner(ctx: Context) -> str:
        return caller.name

    return owner


async def _find(services: Services, task_id: str, owner: str) -> models.Task:
    async with unit_of_work(services.sessionmaker) as uow:
        task = await submission.find_task(uow.session, task_id, owner)
    if task is None:
        raise ToolError(f"No task with id {task_id!r} exists.")
    return task


async def _create(services: Services, new_task: submission.NewTask) -> Task:
    try:
        async with connection_unit(services.pool, transaction=True) as unit:
            task = await submission.create_task(
                unit, new_task, services.dispatcher, services.settings, services.limiter
            )
    except AitasksError as error:  # bad input, or a caller's limit
        raise ToolError(error.message) from None
    return Task.from_model(task)


async def _list(services: Services, owner: str, first: int, status: TaskStatus | None) -> TaskPage:
    try:
        async with unit_of_work(services.sessionmaker) as uow:
            tasks, has_more = await submission.list_tasks(
                uow.session,
                owner=owner,
                first=first,
                after=None,
                status=status,
                settings=services.settings,
            )
    except AitasksError as error:
        raise ToolError(error.message) from None
    return TaskPage(tasks=[Task.from_model(task) for task in tasks], has_more=has_more)


async def _cancel(services: Services, task_id: str, owner: str) -> Task:
    try:
        async with unit_of_work(services.sessionmaker) as uow:
            task = await submission.cancel_task(uow, task_id, services.dispatcher, owner=owner)
    except AitasksError as error:  # unknown id, or a task that has already ended
        raise ToolError(error.message) from None
    return Task.from_model(task)


async def _follow(services: Services, ctx: Context, task_id: str, owner: str) -> models.Task | None:
    """Follow the task to its end, reporting progress; None if it never loaded."""
    latest: models.Task | None = None
    # MCP asks that progress only ever rise: a notification for each rise, and the first.
    reported = -1.0
    # A generator: closed on a timeout, so it stops listening at once.
    updates = cast(
        AsyncGenerator[Update, None],
        watch_task(services.sessionmaker, services.hub, task_id, owner=owner),
    )
    async with contextlib.aclosing(updates):
        async for update in updates:
            latest = update.task
            if latest.progress > reported:
                reported = latest.progress
                await ctx.report_progress(reported, 1.0, latest.stage)
    return latest


async def _wait(
    services: Services, ctx: Context, task_id: str, owner: str, timeout_seconds: float
) -> WaitedTask:
    seconds = min(max(timeout_seconds, 0.0), WAIT_MAX_SECONDS)
    latest: models.Task | None = None
    try:
        with anyio.move_on_after(seconds):
            latest = await _follow(services, ctx, task_id, owner)
    except AitasksError as error:  # an unknown (or another caller's) id
        raise ToolError(error.message) from None
    task = latest if latest is not None else await _find(services, task_id, owner)
    if task.status.is_terminal:
        return WaitedTask(task=Task.from_model(task), finished=True, note=None)
    note = f"Still {task.status.value} after {seconds:g} s; call wait_for_task again to go on."
    return WaitedTask(task=Task.from_model(task), finished=False, note=note)


def _add_tools(server: MCPServer, services: Services, owner_of: OwnerOf) -> None:
    @server.tool()
    async def create_task(
        prompt: str,
        ctx: Context,
        model: str | None = None,
        kind: TaskKind = DEFAULT_KIND,
        priority: TaskPriority = TaskPriority.NORMAL,
        idempotency_key: str | None = None,
    ) -> Task:
        """Queue a task and return it at once, PENDING. `model` defaults to the server's;
        the same `idempotency_key` again returns the task it created instead of a new one."""
        new_task = submission.NewTask(
            owner=await owner_of(ctx),
            prompt=prompt,
            model=model,
            kind=kind,
            priority=priority,
            idempotency_key=idempotency_key,
        )
        return await _create(services, new_task)

    @server.tool()
    async def get_task(task_id: str, ctx: Context) -> Task:
        """The task's current state: status, progress, stage, result or error."""
        return Task.from_model(await _find(services, task_id, await owner_of(ctx)))

    @server.tool()
    async def list_tasks(
        ctx: Context, first: int = LIST_DEFAULT_SIZE, status: TaskStatus | None = None
    ) -> TaskPage:
        """Your tasks, newest first, optionally only those in one status."""
        return await _list(services, await owner_of(ctx), first, status)

    @server.tool()
    async def cancel_task(task_id: str, ctx: Context) -> Task:
        """Cancel a task: a PENDING one never runs, a PROCESSING one stops within about a
        second and ends CANCELLED."""
        return await _cancel(services, task_id, await owner_of(ctx))

    @server.tool()
    async def wait_for_task(
        task_id: str, ctx: Context, timeout_seconds: float = WAIT_DEFAULT_SECONDS
    ) -> WaitedTask:
        """Follow a task until it is COMPLETED, FAILED or CANCELLED, with a progress
        notification as it rises; after `timeout_seconds` (at most 600), the state so far."""
        return await _wait(services, ctx, task_id, await owner_of(ctx), timeout_seconds)


def _add_resources(server: MCPServer, services: Services, owner_of: OwnerOf) -> None:
    @server.resource("task://{task_id}", mime_type="application/json")
    async def task_state(task_id: str, ctx: Context) -> str:
        """The task's current state as JSON."""
        try:
            task = await _find(services, task_id, await owner_of(ctx))
        except ToolError as error:
            raise ResourceError(str(error)) from None
        return Task.from_model(task).model_dump_json()


def build_mcp_server(services: Services, caller: Caller | None = None) -> MCPServer:
    """The MCP server over these services. With `caller`, every request acts as it
    (stdio, whose key was checked at start); without, each HTTP request's
    `Authorization` header says who calls."""
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS)
    owner_of = _fixed_owner(caller) if caller is not None else _http_owner(services)
    _add_tools(server, services, owner_of)
    _add_resources(server, services, owner_of)
    return server


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The hosts and origins `/mcp` answers: this API's own. A web page on another site
    that a DNS trick pointed at this address still sends its own Host, and is refused."""
    netlocs = {f"{settings.host}:{settings.port}", f"127.0.0.1:{settings.port}"}
    netlocs.add(f"localhost:{settings.port}")
    if settings.public_url:
        netlocs.add(urlsplit(settings.public_url).netloc)
    origins = [f"{scheme}://{netloc}" for netloc in netlocs for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=sorted(netlocs),
        allowed_origins=sorted(origins),
    )


def mount_http(server: MCPServer, settings: Settings) -> None:
    """Make the session manager that serves `/mcp`; its `run()` belongs in the lifespan."""
    # The Starlette app this returns is not used: the API serves `/mcp` with its own
    # route (McpEndpoint), which checks the key first and avoids a Mount's redirect
    # from `/mcp` to `/mcp/`.
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(settings),
        host=settings.host,
    )


class McpEndpoint:
    """`/mcp`: refuses a request without a valid key (401) or over the caller's request
    rate (429), as `/graphql` does, then hands it to the MCP session manager.

    A session belongs to the caller whose request opened it: a session id sent with
    another caller's key answers 404, as an unknown session does, so that an id seen in a
    log or a proxy lets no one else use (or end) the session."""

    def __init__(self, sessions_tracked: int) -> None:
        # Who opened each session, the least recently used forgotten first; a forgotten
        # session answers 404 and its client opens a new one, as after a restart.
        self._owners: LRUCache[str, str] = LRUCache(sessions_tracked)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        services: Services = state.services
        headers = Headers(scope=scope)
        caller = await admit(services, bearer(headers.get("authorization")))
        if isinstance(caller, Response):
            await caller(scope, receive, send)
            return
        session_id = headers.get(SESSION_HEADER)
        if session_id is not None and self._owners.get(session_id) != caller.name:
            await _unknown_session()(scope, receive, send)
            return
        server: MCPServer = state.mcp
        await server.session_manager.handle_request(
            scope, receive, self._recording(send, caller.name)
        )

    def _recording(self, send: Send, owner: str) -> Send:
        """`send`, noting the owner of a session the response opens."""

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                opened = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
                if opened is not None:
                    self._owners[opened] = owner
            await send(message)

        return recording_send


def _unknown_session() -> Response:
    error = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32001, "message": "Session not found"},
    }
    return JSONResponse(error, status_code=404)
