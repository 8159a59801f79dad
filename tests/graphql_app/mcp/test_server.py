"""The MCP server, driven with the SDK's own client: over streamable HTTP against the
real API at `/mcp`, and over stdio against `aitasks mcp` started as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent, TextResourceContents

from tests.fixtures.keys import new_key
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.anyio

TOOLS = {"create_task", "get_task", "list_tasks", "cancel_task", "wait_for_task"}
WAIT_SECONDS = 60
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}


@dataclass
class Secured:
    stack: Stack
    alice: str
    bob: str


@pytest.fixture(scope="module")
def secured(make_stack: Callable[..., Stack]) -> Secured:
    stack = make_stack(AITASKS_AUTH="on")
    stack.start_worker()
    stack.start_api()
    return Secured(stack, new_key(stack, "alice"), new_key(stack, "bob"))


@asynccontextmanager
async def http_session(stack: Stack, key: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    timeout = httpx2.Timeout(30, read=WAIT_SECONDS * 2)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as client,
        streamable_http_client(f"{stack.api_url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(stack: Stack, key: str | None = None) -> AsyncIterator[ClientSession]:
    env = {**stack.env, **({"AITASKS_API_KEY": key} if key else {})}
    command = StdioServerParameters(
        command=sys.executable, args=["-m", "graphql_app.cli", "mcp"], env=env
    )
    async with (
        stdio_client(command) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def test_lists_the_five_tools_with_their_input_schemas(stack: Stack) -> None:
    async with http_session(stack) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) >= TOOLS
    assert tools["create_task"].input_schema["required"] == ["prompt"]
    assert "TaskKind" in json.dumps(tools["create_task"].input_schema)
    assert tools["wait_for_task"].output_schema is not None


async def test_created_task_is_followed_to_completion_with_progress(stack: Stack) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with http_session(stack) as session:
        created = structured(
            await session.call_tool("create_task", {"prompt": "hello mcp", "model": "echo"})
        )
        assert created["status"] == "PENDING"
        waited = structured(
            await session.call_tool(
                "wait_for_task",
                {"task_id": created["id"], "timeout_seconds": WAIT_SECONDS},
                progress_callback=on_progress,
            )
        )
        listed = structured(await session.call_tool("list_tasks", {"first": 5}))
    assert waited["finished"] is True
    assert waited["task"]["status"] == "COMPLETED"
    assert "hello mcp" in waited["task"]["result"]
    assert progress, "no progress notification arrived"
    assert all(total == 1.0 for _, total, _ in progress)
    assert created["id"] in [task["id"] for task in listed["tasks"]]


async def test_task_resource_reads_the_current_state(stack: Stack) -> None:
    async with http_session(stack) as session:
        created = structured(await session.call_tool("create_task", {"prompt": "read me"}))
        result = await session.read_resource(f"task://{created['id']}")
    contents = result.contents[0]
    assert isinstance(contents, TextResourceContents)
    state = json.loads(contents.text)
    assert state["id"] == created["id"]
    assert state["prompt"] == "read me"


async def test_input_errors_are_tool_errors_with_the_message(stack: Stack) -> None:
    unknown = str(uuid.uuid4())
    async with http_session(stack) as session:
        missing = await session.call_tool("get_task", {"task_id": unknown})
        empty = await session.call_tool("create_task", {"prompt": "  "})
        bad_model = await session.call_tool("create_task", {"prompt": "x", "model": "nope"})
        # The session still answers after the errors.
        assert (await session.list_tools()).tools
    # The SDK puts "Error executing tool get_task: " before the message.
    assert error_text(missing).endswith(f"No task with id {unknown!r} exists.")
    assert "The prompt is empty" in error_text(empty)
    assert "Unknown model 'nope'" in error_text(bad_model)


async def test_cancel_of_a_pending_task_ends_it_cancelled(stack: Stack) -> None:
    async with http_session(stack) as session:
        created = structured(
            await session.call_tool("create_task", {"prompt": "stop me", "model": "slow-echo"})
        )
        cancelled = structured(await session.call_tool("cancel_task", {"task_id": created["id"]}))
        waited = structured(
            await session.call_tool(
                "wait_for_task", {"task_id": created["id"], "timeout_seconds": WAIT_SECONDS}
            )
        )
    assert cancelled["id"] == created["id"]
    assert waited["task"]["status"] == "CANCELLED"


async def test_another_callers_task_looks_unknown(secured: Secured) -> None:
    async with http_session(secured.stack, secured.alice) as alice:
        created = structured(await alice.call_tool("create_task", {"prompt": "mine"}))
    async with http_session(secured.stack, secured.bob) as bob:
        seen = await bob.call_tool("get_task", {"task_id": created["id"]})
        cancelled = await bob.call_tool("cancel_task", {"task_id": created["id"]})
        listed = structured(await bob.call_tool("list_tasks", {}))
    assert error_text(seen).endswith(f"No task with id {created['id']!r} exists.")
    assert "No task with id" in error_text(cancelled)
    assert listed["tasks"] == []


async def test_a_request_without_a_valid_key_is_refused(secured: Secured) -> None:
    url = f"{secured.stack.api_url}/mcp"
    async with httpx.AsyncClient(timeout=15) as client:
        without = await client.post(url, json=INITIALIZE, headers=MCP_HEADERS)
        wrong = await client.post(
            url, json=INITIALIZE, headers={**MCP_HEADERS, "authorization": "Bearer ait_wrong"}
        )
    assert without.status_code == 401
    assert wrong.status_code == 401


async def test_a_request_for_another_host_is_refused(stack: Stack) -> None:
    # What a DNS-rebinding page sends: this address, under its own host name.
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(
            f"{stack.api_url}/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "host": "evil.example"},
        )
    assert response.status_code in (403, 421), response.text


async def test_stdio_server_answers_as_the_keys_caller(secured: Secured) -> None:
    async with stdio_session(secured.stack, secured.alice) as session:
        tools = {tool.name for tool in (await session.list_tools()).tools}
        created = structured(await session.call_tool("create_task", {"prompt": "via stdio"}))
        found = structured(await session.call_tool("get_task", {"task_id": created["id"]}))
    assert tools >= TOOLS
    assert found["prompt"] == "via stdio"
    async with http_session(secured.stack, secured.bob) as bob:
        seen = await bob.call_tool("get_task", {"task_id": created["id"]})
    assert seen.is_error


def test_stdio_server_refuses_to_start_without_a_key(secured: Secured) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", "mcp"],
        env=secured.stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert finished.returncode != 0
    assert "AITASKS_API_KEY is not set or not a valid key" in finished.stderr
    assert finished.stdout == ""


async def test_a_session_answers_only_the_caller_that_opened_it(secured: Secured) -> None:
    url = f"{secured.stack.api_url}/mcp"
    list_tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}

    def as_(key: str, session_id: str | None = None) -> dict[str, str]:
        session = {"mcp-session-id": session_id} if session_id else {}
        return {
            **MCP_HEADERS,
            **session,
            "authorization": f"Bearer {key}",
            "mcp-protocol-version": "2025-06-18",
        }

    async with httpx.AsyncClient(timeout=15) as client:
        opened = await client.post(url, json=INITIALIZE, headers=as_(secured.alice))
        session_id = opened.headers["mcp-session-id"]
        await client.post(url, json=initialized, headers=as_(secured.alice, session_id))
        taken = await client.post(url, json=list_tools, headers=as_(secured.bob, session_id))
        closed = await client.delete(url, headers=as_(secured.bob, session_id))
        own = await client.post(url, json=list_tools, headers=as_(secured.alice, session_id))

    assert taken.status_code == 404
    assert closed.status_code == 404
    assert own.status_code == 200
    assert "create_task" in own.text
