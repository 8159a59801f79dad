"""One session per operation, committed at the edge, with side effects after the commit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


class UnitOfWork:
    """A session plus what to do once its transaction has committed.

    Services flush and register effects (enqueue a task, publish an event); only the edge
    that opened the unit commits it. A rollback drops the effects, so nothing is announced
    that was not stored.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
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
