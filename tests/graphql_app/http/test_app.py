"""The HTTP surface around GraphQL: GraphiQL in development, the health check, uploads
and artifact downloads."""

from __future__ import annotations

import hashlib
import json
import socket
import uuid

import httpx
import pytest

from persistence.settings import Settings
from tests.fixtures.files import PREFLIGHT, decode_image, download, image_bytes, post_multipart
from tests.fixtures.graphql import CREATE_TASK, poll_until_finished
from tests.fixtures.stack import Stack
from tests.fixtures.tasks import count_tasks

FILE_LIMIT = Settings.model_fields["file_max_bytes"].default
REQUEST_LIMIT = Settings.model_fields["request_max_bytes"].default
UPLOAD_INPUT = {
    "kind": "IMAGE_PROCESSING",
    "params": {"operations": [{"op": "grayscale"}]},
    "files": [{"name": "photo.png", "upload": None}],
}
UPLOAD = {"input.files.0.upload": ("photo.png", image_bytes(), "image/png")}


def test_graphiql_is_served_to_a_browser_in_development(stack: Stack) -> None:
    response = httpx.get(stack.graphql_url, headers={"accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_healthz_answers(stack: Stack) -> None:
    response = httpx.get(f"{stack.api_url}/healthz")

    assert response.json() == {"status": "ok"}


def test_a_multipart_request_without_a_preflight_header_is_refused(stack: Stack) -> None:
    before = count_tasks(stack.database_url)

    response = post_multipart(stack, UPLOAD_INPUT, UPLOAD, headers={})

    assert response.status_code == 400
    assert "GraphQL-Require-Preflight" in response.text
    assert count_tasks(stack.database_url) == before


def test_a_multipart_upload_runs_as_the_task_input(stack: Stack) -> None:
    response = post_multipart(stack, UPLOAD_INPUT, UPLOAD)

    task = response.json()["data"]["createTask"]
    assert task["__typename"] == "Task", task
    assert (
        task["inputs"][0]["sha256"] == hashlib.sha256(UPLOAD["input.files.0.upload"][1]).hexdigest()
    )
    final = poll_until_finished(stack, task["id"])
    assert final["status"] == "COMPLETED", final["error"]
    assert decode_image(download(final["artifacts"][0]["url"]).content).mode == "L"


@pytest.mark.parametrize(
    "file_map",
    [
        {"0": ["variables.input.files.5.upload"]},
        {"0": ["variables.input.files.x.upload"]},
        {"0": ["variables.input.kind.upload"]},
        {"0": [3]},
        ["variables.input.files.0.upload"],
    ],
)
def test_a_multipart_map_that_points_nowhere_is_a_400(stack: Stack, file_map: object) -> None:
    operations = {"query": CREATE_TASK, "variables": {"input": UPLOAD_INPUT}}
    response = httpx.post(
        stack.graphql_url,
        data={"operations": json.dumps(operations), "map": json.dumps(file_map)},
        files={"0": UPLOAD["input.files.0.upload"]},
        headers=PREFLIGHT,
    )

    assert response.status_code == 400, response.text


def test_an_upload_over_the_file_limit_is_a_validation_error(stack: Stack) -> None:
    before = count_tasks(stack.database_url)
    oversize = ("big.png", b"\0" * (FILE_LIMIT + 1), "image/png")

    response = post_multipart(stack, UPLOAD_INPUT, {"input.files.0.upload": oversize})

    result = response.json()["data"]["createTask"]
    assert result["__typename"] == "ValidationError"
    assert f"over the limit of {FILE_LIMIT:,} bytes" in result["message"]
    assert count_tasks(stack.database_url) == before


def test_a_body_over_the_request_limit_is_refused_before_it_is_read(stack: Stack) -> None:
    host, port = stack.api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {REQUEST_LIMIT + 1}\r\n\r\n".encode()
        )
        # The server answers at once and closes: read until it has.
        reply = b"".join(iter(lambda: connection.recv(4096), b"")).decode()

    assert reply.startswith("HTTP/1.1 413")
    assert "AITASKS_REQUEST_MAX_BYTES" in reply


@pytest.mark.parametrize("name", ["result.png", "%00", "x" * 300])
def test_an_unknown_artifact_is_a_404(stack: Stack, name: str) -> None:
    response = httpx.get(f"{stack.api_url}/tasks/{uuid.uuid4()}/artifacts/{name}")

    assert response.status_code == 404
    assert "has no artifact named" in response.json()["error"]


def test_a_batch_of_operations_is_refused(stack: Stack) -> None:
    before = count_tasks(stack.database_url)
    operation = {"query": CREATE_TASK, "variables": {"input": {"prompt": "batched"}}}

    response = httpx.post(stack.graphql_url, json=[operation, operation])

    assert response.status_code == 400
    assert "batching" in response.text.lower()
    assert count_tasks(stack.database_url) == before


def test_an_operation_name_not_in_the_document_is_a_graphql_error(stack: Stack) -> None:
    operation = {"query": "query Mine { __typename }", "operationName": "Theirs"}

    response = httpx.post(stack.graphql_url, json=operation)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    [error] = response.json()["errors"]
    assert error["message"] == 'Unknown operation named "Theirs".'
    assert error["extensions"]["code"] == "BAD_REQUEST"


def test_a_mutation_over_get_is_refused_as_a_graphql_error(stack: Stack) -> None:
    before = count_tasks(stack.database_url)
    mutation = 'mutation { createTask(input: {prompt: "by GET"}) { __typename } }'

    response = httpx.get(
        stack.graphql_url,
        params={"query": mutation},
        headers={"accept": "application/graphql-response+json"},
    )

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert "mutations are not allowed" in response.json()["errors"][0]["message"].lower()
    assert count_tasks(stack.database_url) == before


# What a client must never see: Python's own words for what went wrong.
EXCEPTION_MARKERS = ("Error(", "Traceback", 'File "/', "site-packages", "object has no attribute")
# Far deeper than any real document: the JSON parser's own recursion gives out first.
DEEP = 10_000


@pytest.mark.parametrize(
    "body",
    [
        "[" * DEEP + "]" * DEEP,
        '{"query": ' + "[" * DEEP + "]" * DEEP + "}",
        '{"query": "{ __typename }", "variables": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}",
        "null",
        "1",
        '"text"',
        "[null]",
        '{"query": "{ __typename }", "variables": [1]}',
        '{"query": "{ __typename }", "extensions": 1}',
    ],
    ids=[
        "deep-list",
        "deep-query",
        "deep-variables",
        "null",
        "number",
        "string",
        "list-of-null",
        "variables-list",
        "extensions-number",
    ],
)
def test_a_malformed_json_body_is_a_readable_400(stack: Stack, body: str) -> None:
    response = httpx.post(
        stack.graphql_url,
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 400, response.text
    assert not any(marker in response.text for marker in EXCEPTION_MARKERS), response.text
    assert httpx.post(stack.graphql_url, json={"query": "{ __typename }"}).status_code == 200


@pytest.mark.parametrize(
    "file_map",
    [{"0": ["variables.input.files.5.upload"]}, {"0": ["variables.input.kind.upload"]}, {"0": 3}],
)
def test_a_multipart_map_that_points_nowhere_says_so_without_python_text(
    stack: Stack, file_map: object
) -> None:
    operations = {"query": CREATE_TASK, "variables": {"input": UPLOAD_INPUT}}
    response = httpx.post(
        stack.graphql_url,
        data={"operations": json.dumps(operations), "map": json.dumps(file_map)},
        files={"0": UPLOAD["input.files.0.upload"]},
        headers=PREFLIGHT,
    )

    assert response.status_code == 400
    assert "map" in response.text
    assert not any(marker in response.text for marker in EXCEPTION_MARKERS), response.text
