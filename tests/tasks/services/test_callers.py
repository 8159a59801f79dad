"""The key cache keeps a caller's key however many made-up keys are tried against it.

Against a real PostgreSQL: the key is made and revoked with the `aitasks keys` commands,
and every made-up key is a real lookup. The end-to-end version (tests/graphql_app/
test_auth.py) floods a running API with a small cache; this one overflows the cache at its
default size, which a flood over HTTP would take minutes to do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from persistence.database import create_engine, create_sessionmaker
from tasks.services.callers import CACHE_MAX_KEYS, KEY_PREFIX, Caller, KeyChecker
from tests.fixtures.keys import aitasks, new_key
from tests.fixtures.stack import Stack

# More made-up keys than the cache holds at its default size, so a cache that keeps them
# beside real keys overflows, whatever it then does (empties itself, or drops the oldest).
FLOOD_KEYS = CACHE_MAX_KEYS + 500
# Lookups of the flood started at once.
FLOOD_BATCH = 500


def made_up_key() -> str:
    return f"{KEY_PREFIX}{uuid.uuid4().hex}{uuid.uuid4().hex}"


async def flood_then_check(
    database_url: str, key: str, revoke: Callable[[], object]
) -> Caller | None:
    """Remember `key`, try FLOOD_KEYS made-up keys, revoke `key`; then ask for it again."""
    engine = create_engine(database_url, "aitasks-test-key-cache")
    try:
        checker = KeyChecker(create_sessionmaker(engine), cache_seconds=600)
        assert await checker.caller(key) is not None
        for _ in range(0, FLOOD_KEYS, FLOOD_BATCH):
            batch = [checker.caller(made_up_key()) for _ in range(FLOOD_BATCH)]
            assert set(await asyncio.gather(*batch)) == {None}
        await asyncio.to_thread(revoke)
        return await checker.caller(key)
    finally:
        await engine.dispose()


# Ten thousand lookups: longer than a test usually takes on a busy machine.
@pytest.mark.timeout(600)
def test_more_made_up_keys_than_the_cache_holds_do_not_push_out_a_known_key(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    name = f"hana-{uuid.uuid4().hex[:8]}"
    key = new_key(stack, name)

    def revoke() -> None:
        listed = aitasks(stack, "keys", "list").stdout
        key_id = next(line.split()[0] for line in listed.splitlines() if name in line.split())
        aitasks(stack, "keys", "revoke", key_id)

    # Revoked, but remembered as valid for the cache's 600 s: still answered from the
    # cache, which shows the flood left it there (a cache the flood emptied or overran
    # would ask the database, and the database says the key is revoked).
    caller = asyncio.run(flood_then_check(stack.database_url, key, revoke))

    assert caller == Caller(name)
