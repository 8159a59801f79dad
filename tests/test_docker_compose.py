"""The compose file parses with Docker Compose and runs every part of the service."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    "postgres",
    "redis",
    "migrate",
    "api",
    "worker-text",
    "worker-image",
    "worker-data",
    "flower",
}


def compose_command() -> list[str] | None:
    """`docker compose` where the plugin is installed, else the standalone tool."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def config(*args: str, passwords: bool = True) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_PASSWORD", "_BASIC_AUTH"))
    }
    if passwords:
        env |= {
            "POSTGRES_PASSWORD": "a-real-one",
            "REDIS_PASSWORD": "another-one",
            "FLOWER_BASIC_AUTH": "ops:a-third-one",
        }
    return subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_config_parses_and_names_every_service() -> None:
    listed = config("--services")

    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == SERVICES


def test_compose_refuses_to_start_without_passwords() -> None:
    refused = config("--services", passwords=False)

    assert refused.returncode != 0
    assert "set POSTGRES_PASSWORD" in refused.stderr


def test_the_image_installs_the_project_as_make_run_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "pip install ." in dockerfile
    for package in ("graphql_app", "schema", "tasks", "persistence"):
        assert f"COPY {package} ./{package}" in dockerfile
