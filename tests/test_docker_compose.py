"""The compose file parses with Docker Compose and runs every part of the service."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    "postgres",
    "redis",
    "migrate",
    "api",
    "worker-text",
    "worker-image",
    "worker-data",
    "scheduler",
    "flower",
}
# Task workers that `docker compose up --scale NAME=N` may run several copies of.
SCALABLE_WORKERS = ("worker-text", "worker-image", "worker-data")


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


def test_task_workers_scale_to_several_copies_with_one_sweeper_schedule() -> None:
    resolved = config()
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]

    for name in SCALABLE_WORKERS:
        worker = services[name]
        # A fixed container name or a published port would make a second copy fail.
        assert "container_name" not in worker
        assert not worker.get("ports")
        assert "--no-beat" in worker["command"]
    with_beat = [
        name for name, service in services.items() if "--beat" in service.get("command", [])
    ]
    assert with_beat == ["scheduler"]
    assert "maintenance" in services["scheduler"]["command"]
    assert "deploy" not in services["scheduler"]
