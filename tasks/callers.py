"""Who is calling: API keys made, listed and revoked, and a key checked on each request."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from persistence import keys
from persistence.keys import ApiKey
from persistence.models import CALLER_NAME_MAX_CHARS
from tasks.errors import InvalidInputError
from tasks.text import check_text

# Every key starts with this, so a leaked one is easy to recognise (and to search for).
KEY_PREFIX = "ait_"
# 32 random bytes: no guessing, so a plain SHA-256 digest is a safe way to store it.
KEY_RANDOM_BYTES = 32
# Characters of a key shown in listings to tell keys apart.
SHOWN_PREFIX_CHARS = 12
# The caller every request acts as when authentication is off (development only).
DEVELOPMENT_CALLER = "development"
# Keys looked up recently, kept so a busy client costs no query per request.
CACHE_MAX_KEYS = 10_000


@dataclass(frozen=True)
class Caller:
    """A caller: the name of the key it used. Keys with one name share their tasks."""

    name: str


@dataclass(frozen=True)
class NewKey:
    key: str
    stored: ApiKey


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str) -> NewKey:
    """Make a key for `name`; the key itself is returned once and never stored."""
    check_text("name", name)
    if not name.strip() or len(name) > CALLER_NAME_MAX_CHARS:
        raise InvalidInputError("name", f"A key name has 1 to {CALLER_NAME_MAX_CHARS} characters.")
    key = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    stored = await keys.insert_key(session, name, key[:SHOWN_PREFIX_CHARS], digest(key))
    return NewKey(key, stored)


class KeyChecker:
    """Checks keys against the database, remembering answers for `cache_seconds`: a
    revoked key stops working within that long."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], cache_seconds: float
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Caller | None]] = {}

    async def caller(self, key: str | None) -> Caller | None:
        """The caller a key speaks for, or None for a missing, unknown or revoked key."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 2 * KEY_RANDOM_BYTES + 8:
            return None
        key_hash = digest(key)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessionmaker() as session:
            name = await keys.caller_of(session, key_hash)
        caller = Caller(name) if name is not None else None
        if len(self._cache) >= CACHE_MAX_KEYS:
            self._cache.clear()
        self._cache[key_hash] = (now + self._cache_seconds, caller)
        return caller
