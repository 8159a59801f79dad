"""`/healthz` says the process is up; `/readyz` follows PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.fixtures.redis_server import RestartableRedis
from tests.fixtures.stack import Stack, wait_until

READY_TIMEOUT_SECONDS = 20.0


def readiness(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.api_url}/readyz", timeout=10)


def test_readyz_turns_unhealthy_while_redis_is_down_and_healthy_after(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    redis = RestartableRedis(tmp_path / "redis").start()
    try:
        stack = make_stack(AITASKS_REDIS_URL=redis.url)
        stack.start_api()
        ready = readiness(stack)

        redis.stop()
        down = wait_until(
            lambda: (response := readiness(stack)).status_code == 503 and response,
            READY_TIMEOUT_SECONDS,
            "/readyz to report Redis down",
        )
        redis.start()
        back = wait_until(
            lambda: (response := readiness(stack)).status_code == 200 and response,
            READY_TIMEOUT_SECONDS,
            "/readyz to report ready again",
        )
    finally:
        redis.stop()

    assert ready.json() == {
        "status": "ready",
        "down": [],
        "checks": {"postgres": "ok", "redis": "ok"},
    }
    assert down.json()["status"] == "unavailable"
    assert down.json()["down"] == ["Redis"]
    assert down.headers["retry-after"] == "5"
    assert down.json()["checks"]["postgres"] == "ok"
    assert down.json()["checks"]["redis"] != "ok"
    assert back.json()["status"] == "ready"
    # The liveness check does not depend on either.
    assert httpx.get(f"{stack.api_url}/healthz").json() == {"status": "ok"}


def test_worker_health_answers_for_a_running_worker(stack: Stack) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", "worker-health"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("ok: ")


def test_inspect_summarises_queues_and_workers(stack: Stack) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", "inspect"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 0, finished.stderr
    for queue in ("text_generation", "image_processing", "data_analysis", "maintenance"):
        assert queue in finished.stdout
    # One `aitasks worker`: its prefork node (images, data, maintenance) and its text worker,
    # a Celery node of its own.
    assert "workers (2 answered" in finished.stdout
    assert "text_generation@" in finished.stdout
    assert "image_processing+data_analysis+maintenance@" in finished.stdout
