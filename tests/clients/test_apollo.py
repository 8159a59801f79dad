"""Apollo Client, set up as a frontend would, against the real stack: the Node script
`apollo/check.mjs` drives it and prints what it observed as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.node import NPM_CI_TIMEOUT_SECONDS, npm_installed
from tests.fixtures.stack import Stack

APOLLO_DIR = Path(__file__).parent / "apollo"
# check.mjs gives up by itself after 60 s; this only catches a Node that hangs anyway.
CHECK_TIMEOUT_SECONDS = 90
# The first test to use the shared stack also waits for it to start.
STACK_START_SECONDS = 120
# Every check check.mjs makes; one missing from its report failed to run.
CHECKS = (
    "create_task_returns_validation_error",
    "create_task_returns_task",
    "task_normalised_by_id",
    "subscription_ends_completed",
    "subscription_sequences_consecutive",
    "watch_query_follows_subscription",
    "watch_query_not_refetched",
    "deltas_rebuild_result",
    "list_adds_new_task_at_front",
    "list_task_ends_completed",
    "list_not_refetched",
    "polling_follows_task",
    "fetch_more_appends_next_page",
    "keep_alive_answered",
)

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the Apollo Client check needs Node.js 20 or newer (node and npm on PATH)",
)


@pytest.fixture(scope="session")
def apollo_dir() -> Path:
    """tests/clients/apollo with its node_modules installed from package-lock.json."""
    return npm_installed(APOLLO_DIR)


def run_check(apollo_dir: Path, stack: Stack) -> dict[str, Any]:
    """Run check.mjs against the stack; its report, with Node's stderr added."""
    done = subprocess.run(
        ["node", "check.mjs", stack.graphql_url, stack.ws_url],
        cwd=apollo_dir,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"check.mjs printed nothing (exit {done.returncode}):\n{done.stderr}"
    report: dict[str, Any] = json.loads(lines[-1])
    report["stderr"] = done.stderr
    return report


@pytest.mark.timeout(NPM_CI_TIMEOUT_SECONDS + CHECK_TIMEOUT_SECONDS + STACK_START_SECONDS)
def test_apollo_client_follows_tasks_through_its_normalised_cache(
    apollo_dir: Path, stack: Stack
) -> None:
    report = run_check(apollo_dir, stack)

    checks = report["checks"]
    failed = {
        name: checks[name]["detail"] if name in checks else f"not run: {report['error']}"
        for name in CHECKS
        if not checks.get(name, {}).get("ok")
    }
    assert not failed, (
        f"Apollo Client checks failed: {json.dumps(failed, indent=1)}\n"
        f"observed: {json.dumps(report['observed'])}\n{report['stderr']}"
    )
    assert report["ok"], report
