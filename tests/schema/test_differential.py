"""Every GraphQL document the project's clients send, run through Strawberry's own
execution (`schema.execute`, `schema.subscribe`) and through ours (the prepared path of
`schema/prepared.py`, the WebSocket's shared `taskStatus` path of
`graphql_app/ws/graphql_ws.py`), against the same real PostgreSQL and Redis and the same
caller: the responses, serialised alike, are the same bytes.

The documents: the tests' operations (tests/fixtures/graphql.py), the terminal client's
(graphql_app/cli/terminal.py), and the web app's (web/src/operations.ts, with the fragments
each uses). A createTask that succeeds makes a new task each time, so its id and times
are the only values compared by shape rather than by value."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    OperationDefinitionNode,
    OperationType,
    Visitor,
    parse,
    print_ast,
    visit,
)
from strawberry.http import process_result

from graphql_app.cli import terminal
from graphql_app.http.app import open_services
from graphql_app.ws.graphql_ws import SharedSubscriptions, Subscriber
from persistence.settings import Settings
from schema import QueryLimits, build_schema
from schema.context import Context
from schema.prepared import PreparedOperations
from schema.subscriptions import follow_task
from tasks.services.callers import DEVELOPMENT_CALLER, Caller
from tests.fixtures import graphql as fixture_documents
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import change_task, insert_pending_task

pytestmark = pytest.mark.anyio
WEB_OPERATIONS = Path(__file__).parents[2] / "web" / "src" / "operations.ts"
PUBLIC_URL = "http://api.example"
GENERATED = ("id", "createdAt", "updatedAt")
# A subscription that has not sent all its updates within this long has failed.
FOLLOW_SECONDS = 30.0


@dataclass(frozen=True)
class Document:
    source: str
    query: str
    operation_name: str | None
    operation: OperationType


def _uses(node: Any) -> set[str]:
    names: set[str] = set()

    class Spreads(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_: Any) -> None:
            names.add(spread.name.value)

    visit(node, Spreads())
    return names


def _web_documents() -> list[Document]:
    """Each operation of the web app, with the fragments it uses (as codegen sends it)."""
    blocks = re.findall(r"graphql\(`(.*?)`\)", WEB_OPERATIONS.read_text(), re.DOTALL)
    definitions = [d for block in blocks for d in parse(block).definitions]
    fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
    documents = []
    for operation in definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        needed, todo = set(), _uses(operation)
        while todo:
            name = todo.pop()
            needed.add(name)
            todo |= _uses(fragments[name]) - needed
        node = DocumentNode(definitions=(operation, *(fragments[n] for n in sorted(needed))))
        assert operation.name is not None
        documents.append(
            Document("web", print_ast(node), operation.name.value, operation.operation)
        )
    return documents


def _python_documents(source: str, module: Any) -> list[Document]:
    documents = []
    for name, value in sorted(vars(module).items()):
        if not (name.isupper() and isinstance(value, str)):
            continue
        try:
            document = parse(value)
        except Exception:
            continue  # a fragment of a document (a field list), not one
        [operation] = document.definitions
        if isinstance(operation, OperationDefinitionNode):
            assert operation.name is not None
            documents.append(
                Document(f"{source}.{name}", value, operation.name.value, operation.operation)
            )
    return documents


DOCUMENTS = [
    *_python_documents("fixtures", fixture_documents),
    *_python_documents("terminal", terminal),
    *_web_documents(),
]


def _of(kind: OperationType, root_field: str) -> list[Document]:
    found = [
        document
        for document in DOCUMENTS
        if document.operation is kind and f"{root_field}(" in document.query
    ]
    assert found, f"no {kind.value} of {root_field} among the documents"
    return found


@dataclass(frozen=True)
class Tasks:
    pending: str
    processing: str
    completed: str


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Stack:
    return make_stack()  # no API, no worker: nothing changes the tasks but the test


@pytest.fixture(scope="module")
def tasks(stack: Stack) -> Tasks:
    def task(prompt: str, steps: list[str]) -> str:
        task_id = str(insert_pending_task(stack.database_url, prompt).id)
        if steps:
            change_task(stack.database_url, stack.redis_url, task_id, steps, announce=False)
        return task_id

    return Tasks(
        pending=task("pending", []),
        processing=task("running", ["claim", "output"]),
        completed=task("drawn", ["claim", "output", "complete with an artifact"]),
    )


@dataclass(frozen=True)
class _Request:
    base_url: str = PUBLIC_URL


@dataclass
class Paths:
    schema: Any
    prepared: PreparedOperations
    shared: SharedSubscriptions
    context: Context


@pytest.fixture
async def paths(stack: Stack) -> AsyncIterator[Paths]:
    settings = Settings(
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        public_url=PUBLIC_URL,
        auth=False,
        requests_per_minute=0,
        creates_per_minute=0,
        unfinished_tasks_max=0,
        default_model="demo",
    )
    limits = QueryLimits()
    schema = build_schema(limits)
    async with open_services(settings) as services:
        async with asyncio.timeout(FOLLOW_SECONDS):
            await services.hub.wait_subscribed()
        context = Context(
            services=services,
            request=_Request(),
            response=None,
            caller=Caller(DEVELOPMENT_CALLER),
        )
        yield Paths(
            schema, PreparedOperations(schema, limits), SharedSubscriptions(schema, limits), context
        )


async def _strawberry(paths: Paths, document: Document, variables: dict[str, Any]) -> bytes:
    result = await paths.schema.execute(
        document.query,
        variable_values=variables,
        context_value=paths.context,
        operation_name=document.operation_name,
    )
    return orjson.dumps(process_result(result))


async def _ours(paths: Paths, document: Document, variables: dict[str, Any]) -> bytes:
    prepared = paths.prepared.get(document.query, document.operation_name)
    assert prepared is not None, f"{document.source} is not served by the prepared path"
    return orjson.dumps(await paths.prepared.execute(prepared, variables, paths.context))


async def _both(paths: Paths, document: Document, variables: dict[str, Any]) -> None:
    theirs = await _strawberry(paths, document, variables)
    ours = await _ours(paths, document, variables)
    assert ours == theirs, document.source


def _query_cases(tasks: Tasks) -> Iterator[tuple[str, dict[str, Any]]]:
    for task_id in (tasks.pending, tasks.processing, tasks.completed):
        yield "task", {"id": task_id}
    yield "task", {"id": str(uuid.uuid4())}  # nobody's
    yield "task", {"id": "not-an-id"}
    yield "tasks", {"first": 2}
    yield "tasks", {"first": 2, "status": "COMPLETED"}
    yield "tasks", {"first": 2, "after": "not-a-cursor"}
    yield "tasks", {"first": -1}


async def test_every_query_answers_the_same_on_both_paths(paths: Paths, tasks: Tasks) -> None:
    compared = 0
    for root_field, variables in _query_cases(tasks):
        for document in _of(OperationType.QUERY, root_field):
            await _both(paths, document, variables)
            compared += 1
    assert compared >= 12


async def test_every_mutation_that_changes_nothing_answers_the_same_on_both_paths(
    paths: Paths, tasks: Tasks
) -> None:
    cases = [
        ("cancelTask", {"id": str(uuid.uuid4())}),  # not found
        ("cancelTask", {"id": tasks.completed}),  # already finished
        ("retryTask", {"id": tasks.pending}),  # not failed
        ("createTask", {"input": {"prompt": ""}}),  # a validation error
        ("createTask", {"input": {"prompt": "hi", "model": "no-such-model"}}),
    ]
    for root_field, variables in cases:
        for document in _of(OperationType.MUTATION, root_field):
            await _both(paths, document, variables)


def _generated_blanked(body: bytes) -> Any:
    def blank(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "<made>" if k in GENERATED else blank(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        return value

    return blank(orjson.loads(body))


async def test_a_created_task_answers_alike_on_both_paths_but_for_its_id_and_times(
    paths: Paths,
) -> None:
    for document in _of(OperationType.MUTATION, "createTask"):
        variables = {"input": {"prompt": "the same", "model": "demo"}}
        theirs = await _strawberry(paths, document, variables)
        ours = await _ours(paths, document, variables)
        assert orjson.loads(theirs)["data"]["createTask"]["__typename"] == "Task"
        assert _generated_blanked(ours) == _generated_blanked(theirs), document.source


async def _first_from_strawberry(
    paths: Paths, document: Document, variables: dict[str, Any]
) -> bytes:
    stream = await paths.schema.subscribe(
        document.query,
        variable_values=variables,
        context_value=paths.context,
        operation_name=document.operation_name,
    )
    try:
        first = await anext(stream)
    finally:
        await stream.aclose()
    return orjson.dumps(process_result(first))


async def _first_from_ours(paths: Paths, document: Document, variables: dict[str, Any]) -> bytes:
    prepared = paths.shared.prepare(document.query, document.operation_name)
    assert prepared is not None, f"{document.source} is not served by the shared path"
    arguments = paths.shared.arguments(prepared, variables)
    assert arguments is not None
    updates = follow_task(paths.context, str(arguments["id"]), arguments.get("after"))
    try:
        first = await anext(updates)
    finally:
        await updates.aclose()
    subscriber = Subscriber.of(prepared, variables, paths.context)
    return (await paths.shared.payload(subscriber, first)).encode()


async def test_every_task_status_subscription_starts_the_same_on_both_paths(
    paths: Paths, tasks: Tasks
) -> None:
    cases = [
        {"id": tasks.pending},
        {"id": tasks.processing},
        {"id": tasks.completed},
        {"id": tasks.completed, "after": 1},
    ]
    for variables in cases:
        for document in _of(OperationType.SUBSCRIPTION, "taskStatus"):
            if "after" in variables and "$after" not in document.query:
                continue
            theirs = await _first_from_strawberry(paths, document, variables)
            ours = await _first_from_ours(paths, document, variables)
            assert ours == theirs, (document.source, variables)


async def _all_from_strawberry(
    paths: Paths, document: Document, variables: dict[str, Any]
) -> AsyncIterator[bytes]:
    stream = await paths.schema.subscribe(
        document.query,
        variable_values=variables,
        context_value=paths.context,
        operation_name=document.operation_name,
    )
    async for result in stream:
        yield orjson.dumps(process_result(result))


async def _all_from_ours(
    paths: Paths, document: Document, variables: dict[str, Any]
) -> AsyncIterator[bytes]:
    prepared = paths.shared.prepare(document.query, document.operation_name)
    assert prepared is not None
    subscriber = Subscriber.of(prepared, variables, paths.context)
    async for update in follow_task(paths.context, variables["id"], None):
        yield (await paths.shared.payload(subscriber, update)).encode()


async def test_every_task_status_subscription_follows_a_task_the_same_on_both_paths(
    paths: Paths, stack: Stack
) -> None:
    task_id = str((await asyncio.to_thread(insert_pending_task, stack.database_url, "live")).id)
    streams = [
        (document.source, follow(paths, document, {"id": task_id}))
        for document in _of(OperationType.SUBSCRIPTION, "taskStatus")
        for follow in (_all_from_strawberry, _all_from_ours)
    ]
    async with asyncio.timeout(FOLLOW_SECONDS):
        firsts = [await anext(stream) for _, stream in streams]
        await asyncio.to_thread(
            change_task,
            stack.database_url,
            stack.redis_url,
            task_id,
            ["claim", "output", "output", "complete"],
            announce=True,
        )
        followed = [
            [first, *[payload async for payload in stream]]
            for first, (_, stream) in zip(firsts, streams, strict=True)
        ]
    for index in range(0, len(streams), 2):
        theirs, ours = followed[index], followed[index + 1]
        assert len(theirs) == 5, streams[index][0]  # PENDING, then each of four changes
        assert ours == theirs, streams[index][0]
