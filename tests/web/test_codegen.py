"""The typed documents in web/src/gql are what GraphQL Code Generator makes from the
committed schema.graphql and the app's operations."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.web import ROOT

WEB = ROOT / "web"
GENERATED = WEB / "src" / "gql"
CODEGEN_TIMEOUT_SECONDS = 300


@pytest.mark.timeout(CODEGEN_TIMEOUT_SECONDS)
def test_generated_documents_are_up_to_date(web_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "gql"
    done = subprocess.run(
        ["npx", "--no-install", "graphql-codegen", "--config", "codegen.ts", "--silent"],
        cwd=WEB,
        env={**os.environ, "CODEGEN_OUT": f"{out}/"},
        capture_output=True,
        text=True,
        timeout=CODEGEN_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"graphql-codegen failed:\n{done.stdout}\n{done.stderr}"

    made = {path.name: path.read_text() for path in out.iterdir()}
    committed = {path.name: path.read_text() for path in GENERATED.iterdir()}
    assert made == committed, "web/src/gql is stale: run `npm run codegen` in web/"
