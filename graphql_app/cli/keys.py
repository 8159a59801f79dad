"""`aitasks keys`: create, list and revoke API keys, in the configured database or, with
none configured, in the embedded one `aitasks run` uses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_app.cli import devstack, embedded
from persistence import admin, api_keys
from persistence.api_keys import ApiKey
from persistence.database import create_engine, create_sessionmaker
from persistence.migrate import upgrade_to_head
from persistence.settings import Settings
from tasks.services.callers import NewKey, create_key, digest

T = TypeVar("T")


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The configured database, else the embedded one (joined if `aitasks run` is up,
    started for the moment if not), brought up to date."""
    if settings.database_url:
        yield settings.database_url
        return
    stack = devstack.find(settings.data_dir)
    if stack is not None:
        yield stack.database_url
        return
    server, server_url = embedded.start_postgres(settings.data_dir.resolve() / "pgdata")
    try:
        url = asyncio.run(admin.create_database(server_url, embedded.DATABASE_NAME))
        upgrade_to_head(url)
        yield url
    finally:
        server.cleanup()


def _in_transaction(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(database_url, "aitasks-keys")
        try:
            async with create_sessionmaker(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def new_key(database_url: str, name: str) -> NewKey:
    return _in_transaction(database_url, lambda session: create_key(session, name))


def all_keys(database_url: str) -> list[ApiKey]:
    return _in_transaction(database_url, api_keys.list_keys)


class KeyNotFound(Exception):
    """No active key, or more than one, matches what was given; the message says which."""


def _matches(key: ApiKey, given: str) -> bool:
    return str(key.id).startswith(given.lower()) or key.prefix == given


async def _revoke_one(session: AsyncSession, given: str) -> ApiKey:
    # `keys list` and the README write ids and prefixes with "..." after them.
    given = given.strip().rstrip(".")
    if not given:
        raise KeyNotFound("give a key's id, the start of it, or its first characters")
    found = [key for key in await api_keys.list_keys(session) if not key.revoked_at]
    matching = [key for key in found if _matches(key, given)]
    if not matching:
        raise KeyNotFound(f"no active key has an id starting with {given!r} or that prefix")
    if len(matching) > 1:
        ids = ", ".join(str(key.id)[:8] for key in matching)
        raise KeyNotFound(f"{given!r} matches {len(matching)} keys ({ids}): give more characters")
    revoked = await api_keys.revoke_key(session, str(matching[0].id))
    return revoked[0]


def revoke(database_url: str, given: str) -> ApiKey:
    """Revoke the one active key whose id starts with `given`, or whose prefix it is."""
    return _in_transaction(database_url, lambda session: _revoke_one(session, given))


HEADER = ("ID", "PREFIX", "NAME", "CREATED", "STATE")


def row(key: ApiKey) -> tuple[str, ...]:
    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
    return (str(key.id), f"{key.prefix}...", key.name, f"{key.created_at:%Y-%m-%d %H:%M}", state)


def as_json(key: ApiKey) -> dict[str, str | None]:
    return {
        "id": str(key.id),
        "prefix": key.prefix,
        "name": key.name,
        "createdAt": key.created_at.isoformat(),
        "revokedAt": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def describe(key: ApiKey) -> str:
    return "  ".join(row(key))


# The key `aitasks run` makes for the person running it, and where it keeps it.
DEVELOPMENT_KEY_NAME = "development"
DEVELOPMENT_KEY_FILE = "development-key"


def development_key(database_url: str, settings: Settings) -> str:
    """The key `aitasks run` prints: the one kept in the data directory while it is still
    valid, else a new one (kept there, readable by this user only)."""
    path = settings.data_dir.resolve() / DEVELOPMENT_KEY_FILE
    if path.exists():
        kept = path.read_text().strip()
        found = _in_transaction(
            database_url, lambda session: api_keys.caller_of(session, digest(kept))
        )
        if found is not None:
            return kept
    made = new_key(database_url, DEVELOPMENT_KEY_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(made.key + "\n")
    return made.key
