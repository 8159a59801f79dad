"""Creating and dropping whole databases (for `aitasks run` and the tests)."""

from __future__ import annotations

import re

import asyncpg
from sqlalchemy.engine import make_url

# Names are ours (never user input), but are spliced into DDL, so keep them plain.
SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _checked(name: str) -> str:
    if not SAFE_NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def _connect_args(server_url: str) -> dict[str, object]:
    url = make_url(server_url)
    args: dict[str, object] = {
        "user": url.username,
        "password": url.password,
        "host": url.query.get("host") or url.host,
        "port": url.port,
        "database": "postgres",
    }
    return {key: value for key, value in args.items() if value}


def database_url(server_url: str, name: str) -> str:
    """The same server's URL, naming another database."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def create_database(server_url: str, name: str) -> str:
    """Create database `name` unless it exists; return its URL."""
    name = _checked(name)
    connection = await asyncpg.connect(**_connect_args(server_url))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    name = _checked(name)
    connection = await asyncpg.connect(**_connect_args(server_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
