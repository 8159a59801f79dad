"""`/metrics` on the API and on a worker parse as Prometheus text, and move with work."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.graphql import create_task, poll_until_finished
from tests.fixtures.stack import Stack, free_port, wait_until

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
