"""Who is calling: API keys made, listed and revoked, and a key checked on each request."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from persistence import api_keys
from persistence.api_keys import ApiKey
from persistence.models import CALLER_NAME_MAX_CHARS
from tasks.errors import InvalidInputError
from tasks.services.text import check_text

# Every key starts with this, so a leaked one is easy to recognise (and to search for).
KEY_PREFIX = "ait_"
# 32 random bytes: no guessing, so a plain SHA-256 digest is a safe way to store it.
KEY_RANDOM_BYTES = 32
# Characters of a key shown in listings to tell keys apart.
SHOWN_PREFIX_CHARS = 12
# The caller every request acts as when authentication is off (development only).
DEVELOPMENT_CALLER = "development"
# Keys looked up recently, kept so a busy client costs no query per request: this many
# known keys, and separately this many unknown ones, so that random keys sent by anyone
# can only push out other unknown keys, never a caller's. The least recently used goes
# first when one is full (AITASKS_AUTH_CACHE_MAX_KEYS).
CACHE_MAX_KEYS = 10_000
# Keys in no cache looked up at once (AITASKS_AUTH_LOOKUPS_IN_FLIGHT).
LOOKUPS_IN_FLIGHT = 4


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
    stored = await api_keys.insert_key(session, name, key[:SHOWN_PREFIX_CHARS], digest(key))
    return NewKey(key, stored)


class KeyChecker:
    """Checks keys against the database, remembering answers for `cache_seconds`: a
    revoked key stops working within that long. At most `lookups_in_flight` keys that
    are in neither cache are looked up at once: a flood of made-up keys waits its turn
    instead of taking the database's connections."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cache_seconds: float,
        *,
        lookups_in_flight: int = LOOKUPS_IN_FLIGHT,
        max_keys: int = CACHE_MAX_KEYS,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cache_seconds = cache_seconds
        # TTLCache needs a positive time to live; with caching off nothing is stored.
        ttl = max(cache_seconds, 1e-9)
        self._known: TTLCache[str, Caller] = TTLCache(max_keys, ttl)
        self._unknown: TTLCache[str, bool] = TTLCache(max_keys, ttl)
        self._lookups = asyncio.Semaphore(lookups_in_flight)

    async def caller(self, key: str | None) -> Caller | None:
        """The caller a key speaks for, or None for a missing, unknown or revoked key."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 2 * KEY_RANDOM_BYTES + 8:
            return None
        return await self.caller_of_digest(digest(key))

    async def caller_of_digest(self, key_hash: str | None) -> Caller | None:
        """The caller a key speaks for, by the key's digest (what a login session keeps)."""
        if not key_hash:
            return None
        known = self._known.get(key_hash)
        if known is not None:
            return known
        if key_hash in self._unknown:
            return None
        async with self._lookups, self._sessionmaker() as session:
            name = await api_keys.caller_of(session, key_hash)
        caller = Caller(name) if name is not None else None
        self._remember(key_hash, caller)
        return caller

    async def still_valid(self, key_hashes: Iterable[str | None]) -> set[str]:
        """Which of these key digests still speak for a caller, read from the database now
        (one query for all), the cache refreshed with the answers."""
        wanted = {key_hash for key_hash in key_hashes if key_hash}
        if not wanted:
            return set()
        async with self._sessionmaker() as session:
            names = await api_keys.callers_of(session, list(wanted))
        for key_hash in wanted:
            name = names.get(key_hash)
            self._remember(key_hash, Caller(name) if name is not None else None)
        return {key_hash for key_hash in wanted if key_hash in names}

    def _remember(self, key_hash: str, caller: Caller | None) -> None:
        if self._cache_seconds <= 0:
            return
        if caller is None:
            self._known.pop(key_hash, None)
            self._unknown[key_hash] = True
        else:
            self._unknown.pop(key_hash, None)
            self._known[key_hash] = caller
