"""Database URLs as hosts hand them out: libpq's `sslmode` works with the asyncpg driver."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from persistence.database import async_url, create_engine
from tests.fixtures.stack import Backing


def _with_query(url: str, parameter: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{parameter}"


def test_sslmode_becomes_asyncpgs_ssl_with_the_same_value() -> None:
    url = async_url("postgresql://user:secret@db.example.com:5432/aitasks?sslmode=verify-full")

    assert url.query == {"ssl": "verify-full"}
    assert url.drivername == "postgresql+asyncpg"


def test_a_database_url_with_sslmode_connects(backing: Backing) -> None:
    async def select_one(url: str) -> int:
        engine = create_engine(url, "aitasks-tests")
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(text("SELECT 1"))).scalar_one())
        finally:
            await engine.dispose()

    # The test server speaks no TLS: `prefer` falls back to plain, as with libpq.
    assert asyncio.run(select_one(_with_query(backing.postgres_url, "sslmode=prefer"))) == 1
