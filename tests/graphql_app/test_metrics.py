"""`/metrics` on the API and on a worker parse as Prometheus text, and move with work."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import graphql
import httpx
from prometheus_client.parser import text_string_to_metric_families

from schema import schema as strawberry_schema
from tests.fixtures.graphql import create_task, poll_until_finished
from tests.fixtures.stack import Stack, free_port, wait_until

# Documents with a made-up root field each: enough to see labels grow if they would.
UNKNOWN_FIELDS = 20
# The root fields of the schema, and the labels of documents that name none of them.
_ROOTS = graphql.build_schema(strawberry_schema.as_str())
KNOWN_FIELDS = {
    name
    for root in (_ROOTS.query_type, _ROOTS.mutation_type, _ROOTS.subscription_type)
    if root is not None
    for name in root.fields
} | {"__typename", "__schema", "__type", "invalid", "unknown", "multiple", "none"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_api_metrics_count_operations_and_tasks_created(stack: Stack) -> None:
    url = f"{stack.api_url}/metrics"
    before = scrape(url)

    create_task(stack, prompt="Count me", model="echo")
    after = scrape(url)

    created = "aitasks_tasks_created_total"
    assert (
        value(after, created, kind="TEXT_GENERATION")
        == value(before, created, kind="TEXT_GENERATION") + 1
    )
    operations = "aitasks_graphql_operations_total"
    labels = {"type": "mutation", "field": "createTask", "outcome": "ok"}
    assert value(after, operations, **labels) == value(before, operations, **labels) + 1
    latency = "aitasks_graphql_operation_seconds_count"
    assert value(after, latency, type="mutation", field="createTask") >= 1
    assert ("aitasks_websockets_open", frozenset()) in after


def test_worker_metrics_count_finished_tasks_and_queue_depths(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    port = free_port()
    stack.start_worker("--metrics-port", str(port))
    stack.start_api()
    url = f"http://127.0.0.1:{port}/metrics"

    task = create_task(stack, prompt="Measure me", model="echo")
    assert poll_until_finished(stack, task["id"])["status"] == "COMPLETED"

    count = "aitasks_task_duration_seconds_count"
    labels = {"kind": "TEXT_GENERATION", "outcome": "completed"}
    samples = wait_until(
        lambda: (scraped := scrape(url)) and value(scraped, count, **labels) >= 1 and scraped,
        15,
        "the worker's metrics to count the task",
    )
    assert value(samples, "aitasks_queue_depth", queue="text_generation") == 0
    assert ("aitasks_queue_depth", frozenset({("queue", "data_analysis")})) in samples


def test_documents_naming_unknown_fields_add_no_metric_labels(stack: Stack) -> None:
    url = f"{stack.api_url}/metrics"
    names = [f"probe{uuid.uuid4().hex}" for _ in range(UNKNOWN_FIELDS)]

    for name in names:
        response = httpx.post(stack.graphql_url, json={"query": f"{{ {name} }}"}, timeout=10)
        assert response.status_code in (200, 400)
    body = httpx.get(url, timeout=10).text

    assert not any(name in body for name in names)
    fields = {
        dict(labels)["field"]
        for name, labels in scrape(url)
        if name == "aitasks_graphql_operations_total"
    }
    assert fields <= KNOWN_FIELDS
