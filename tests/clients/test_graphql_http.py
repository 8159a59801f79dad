"""The GraphQL-over-HTTP spec's own server audit (the npm package `graphql-http`), run
against the real API with an API key: every audit, the MUSTs and the SHOULDs, passes,
`application/graphql-response+json` and its status codes included."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.keys import new_key
from tests.fixtures.node import NPM_CI_TIMEOUT_SECONDS, npm_installed
from tests.fixtures.stack import Stack

AUDIT_DIR = Path(__file__).parent / "graphql_http"
# The audit sends about sixty small requests.
AUDIT_TIMEOUT_SECONDS = 90
# graphql-http 1.23's audits; the report must hold every one of them.
AUDITS = 61

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the graphql-http audit needs Node.js 20 or newer (node and npm on PATH)",
)


@pytest.fixture(scope="module")
def audit_dir() -> Path:
    """tests/clients/graphql_http with its node_modules installed from package-lock.json."""
    return npm_installed(AUDIT_DIR)


@pytest.fixture(scope="module")
def keyed(make_stack: Callable[..., Stack]) -> Iterator[tuple[Stack, str]]:
    """An API that requires keys, as production does, and a key for the audit."""
    stack = make_stack(AITASKS_AUTH="on")
    stack.start_api()
    yield stack, new_key(stack, "audit")
    # Stopped with the module, not the session: every stack holds PostgreSQL
    # connections, and the suite's stacks together would pass its connection limit.
    stack.terminate()
    stack.wait_stopped()


def run_audit(audit_dir: Path, url: str, key: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["node", "audit.mjs", url, key],
        cwd=audit_dir,
        capture_output=True,
        text=True,
        timeout=AUDIT_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"audit.mjs failed:\n{done.stdout}\n{done.stderr}"
    report: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.timeout(NPM_CI_TIMEOUT_SECONDS + AUDIT_TIMEOUT_SECONDS + 120)
def test_the_graphql_over_http_audit_passes_in_full(
    audit_dir: Path, keyed: tuple[Stack, str]
) -> None:
    stack, key = keyed

    report = run_audit(audit_dir, stack.graphql_url, key)

    not_ok = [audit for audit in report if audit["status"] != "ok"]
    assert len(report) == AUDITS
    assert not not_ok, json.dumps(not_ok, indent=1)
