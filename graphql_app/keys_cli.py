"""`aitasks keys`: create, list and revoke API keys, in the configured database or, with
none configured, in the embedded one `aitasks run` uses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_app import embedded
from graphql_app.settings import Settings
from persistence import admin, keys
from persistence.database import create_engine, create_sessionmaker
from persistence.keys import ApiKey
from persistence.migrate import upgrade_to_head
from tasks.callers import NewKey, create_key, digest

T = TypeVar("T")


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The configured database, else the embedded one (joined if `aitasks run` is up,
    started for the moment if not), brought up to date."""
    if settings.database_url:
        yield settings.database_url
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
    return _in_transaction(database_url, keys.list_keys)


def revoke(database_url: str, id_or_prefix: str) -> list[ApiKey]:
    return _in_transaction(database_url, lambda session: keys.revoke_key(session, id_or_prefix))


def describe(key: ApiKey) -> str:
    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
    created = f"{key.created_at:%Y-%m-%d %H:%M}"
    return f"{key.id}  {key.prefix}...  {key.name:<24} created {created}  {state}"


# The key `aitasks run` makes for the person running it, and where it keeps it.
DEVELOPMENT_KEY_NAME = "development"
DEVELOPMENT_KEY_FILE = "development-key"


def development_key(database_url: str, settings: Settings) -> str:
    """The key `aitasks run` prints: the one kept in the data directory while it is still
    valid, else a new one (kept there, readable by this user only)."""
    path = settings.data_dir.resolve() / DEVELOPMENT_KEY_FILE
    if path.exists():
        kept = path.read_text().strip()
        found = _in_transaction(database_url, lambda session: keys.caller_of(session, digest(kept)))
        if found is not None:
            return kept
    made = new_key(database_url, DEVELOPMENT_KEY_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(made.key + "\n")
    return made.key
