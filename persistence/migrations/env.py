"""Alembic environment: runs the migrations on the asyncpg engine of the given URL."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from persistence.database import create_engine
from persistence.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _migrate() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", "aitasks-migrate")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_migrate())
