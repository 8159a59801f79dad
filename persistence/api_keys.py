"""Every query on `api_keys`."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import api_keys


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


async def insert_key(session: AsyncSession, name: str, prefix: str, key_hash: str) -> ApiKey:
    statement = (
        insert(api_keys)
        .values(id=uuid.uuid4(), name=name, prefix=prefix, key_hash=key_hash)
        .returning(*_listed())
    )
    return ApiKey(*(await session.execute(statement)).one())


def _listed() -> tuple:  # type: ignore[type-arg]
    columns = api_keys.c
    return (columns.id, columns.name, columns.prefix, columns.created_at, columns.revoked_at)


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    query = select(*_listed()).order_by(api_keys.c.created_at)
    return [ApiKey(*row) for row in (await session.execute(query)).all()]


async def revoke_key(session: AsyncSession, id_or_prefix: str) -> list[ApiKey]:
    """Revoke the key with this id, or the keys whose listed prefix this is."""
    columns = api_keys.c
    matches = [columns.prefix == id_or_prefix]
    with contextlib.suppress(ValueError):
        matches.append(columns.id == uuid.UUID(id_or_prefix))
    statement = (
        update(api_keys)
        .where(or_(*matches), columns.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(*_listed())
    )
    return [ApiKey(*row) for row in (await session.execute(statement)).all()]


async def caller_of(session: AsyncSession, key_hash: str) -> str | None:
    """The name of the unrevoked key with this digest, or None."""
    query = select(api_keys.c.name).where(
        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
    )
    name: str | None = (await session.execute(query)).scalar_one_or_none()
    return name


async def callers_of(session: AsyncSession, key_hashes: list[str]) -> dict[str, str]:
    """The names of the unrevoked keys among these digests, by digest."""
    query = select(api_keys.c.key_hash, api_keys.c.name).where(
        api_keys.c.key_hash.in_(key_hashes), api_keys.c.revoked_at.is_(None)
    )
    return {key_hash: name for key_hash, name in (await session.execute(query)).all()}
