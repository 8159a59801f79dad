"""One session per operation, committed at the edge, with side effects after the commit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from asyncpg import Connection, Pool
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


class _Effects:
    """What to do once a unit's transaction has committed. A rollback drops them, so
    nothing is announced that was not stored."""

    def __init__(self) -> None:
        self._after_commit: list[AfterCommit] = []

    def after_commit(self, effect: AfterCommit) -> None:
        self._after_commit.append(effect)

    async def run_after_commit(self) -> None:
        effects, self._after_commit = self._after_commit, []
        for effect in effects:
            try:
                await effect()
            except Exception:
                # The row is committed; a lost message or event is recovered from it
                # (the sweeper re-enqueues, subscribers re-read), so log and go on.
                logger.exception("an after-commit effect failed")


class UnitOfWork(_Effects):
    """A session plus what to do once its transaction has committed.

    Services flush and register effects (enqueue a task, publish an event); only the edge
    that opened the unit commits it.
    """

    def __init__(self, session: AsyncSession) -> None:
        super().__init__()
        self.session = session


class ConnectionUnit(_Effects):
    """The driver's own connection (asyncpg), for the few statements written out in SQL
    (`persistence.creation`), plus what to do once they are committed.

    In a transaction the connection is held from the start. Without one it is taken from
    the pool when first asked for: a create whose row goes out in a group
    (`creation.TaskInserts`) never needs one of its own.
    """

    def __init__(self, pool: Pool, connection: Connection | None = None) -> None:
        super().__init__()
        self._pool = pool
        self._connection = connection
        self.in_transaction = connection is not None

    async def connection(self) -> Connection:
        if self._connection is None:
            self._connection = await self._pool.acquire()
        return self._connection

    async def _give_back(self) -> None:
        """Return a connection taken when asked for (a transaction's is the caller's)."""
        if not self.in_transaction and self._connection is not None:
            connection, self._connection = self._connection, None
            await self._pool.release(connection)


@asynccontextmanager
async def connection_unit(pool: Pool, *, transaction: bool) -> AsyncIterator[ConnectionUnit]:
    """A connection from the pool, with its statements in one transaction, or, without
    `transaction`, each committing on its own (no BEGIN or COMMIT round trips: for work
    whose statements are each safe alone). Effects run after the block."""
    if transaction:
        async with pool.acquire() as connection, connection.transaction():
            unit = ConnectionUnit(pool, connection)
            yield unit
    else:
        unit = ConnectionUnit(pool)
        try:
            yield unit
        finally:
            await unit._give_back()
    await unit.run_after_commit()


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[UnitOfWork]:
    """Commit when the block ends normally, roll back when it raises, then run effects."""
    async with sessionmaker() as session:
        uow = UnitOfWork(session)
        async with session.begin():
            yield uow
    await uow.run_after_commit()
