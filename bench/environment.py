"""What a run was measured on: the machine, Python, the libraries and the servers."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from redis.asyncio import Redis
from sqlalchemy import text

from bench.stack import BENCH_APPLICATION_NAME, Backing
from persistence.database import create_engine

LIBRARIES = (
    "strawberry-graphql",
    "fastapi",
    "uvicorn",
    "websockets",
    "uvloop",
    "redis",
    "asyncpg",
    "sqlalchemy",
    "celery",
    "httpx",
)
GIB = 1024**3
REPOSITORY = Path(__file__).resolve().parent.parent
# What the benchmarks themselves are made of: changes there do not change the code measured.
BENCH_PATHS = (":!bench", ":!docs/benchmarks.md", ":!Makefile")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def code_version() -> str:
    """The commit measured, and whether the code differs from it."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *BENCH_PATHS)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} with uncommitted changes" if changed else commit


async def _servers(backing: Backing) -> dict[str, str]:
    engine = create_engine(backing.server_url, BENCH_APPLICATION_NAME)
    try:
        async with engine.connect() as connection:
            postgres = str((await connection.execute(text("SHOW server_version"))).scalar())
    finally:
        await engine.dispose()
    redis = Redis.from_url(backing.redis_url)
    try:
        redis_version = str((await redis.info("server"))["redis_version"])
    finally:
        await redis.aclose()
    return {
        "PostgreSQL": f"{postgres} ({_where(backing.embedded_postgres)})",
        "Redis": f"{redis_version} ({_where(backing.embedded_redis)})",
    }


def _where(embedded: bool) -> str:
    return "embedded" if embedded else "given by URL"


async def describe(backing: Backing) -> dict[str, Any]:
    return {
        "machine": {
            "CPU": f"{_cpu_model()}, {os.cpu_count()} cores",
            "memory": f"{psutil.virtual_memory().total / GIB:.1f} GiB",
            "OS": platform.platform(),
        },
        "software": {
            "aitasks commit": code_version(),
            "Python": platform.python_version(),
            **{package: _version(package) for package in LIBRARIES},
            **await _servers(backing),
        },
    }
