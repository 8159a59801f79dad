"""What every resolver gets: the services built at start-up and the request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from graphql_app.settings import Settings
from persistence.events import TaskEventHub
from persistence.unit_of_work import UnitOfWork, unit_of_work
from tasks.dispatch import Dispatcher


@dataclass(frozen=True)
class Services:
    """Built once in the API's lifespan and shared by every request."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    # Sessions whose statements each commit on their own (no BEGIN, no COMMIT).
    autocommit_sessionmaker: async_sessionmaker[AsyncSession]
    hub: TaskEventHub
    dispatcher: Dispatcher


@dataclass
class Context:
    services: Services
    request: Any
    response: Any

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @asynccontextmanager
    async def unit_of_work(self, *, autocommit: bool = False) -> AsyncIterator[UnitOfWork]:
        """The operation's transaction: committed when the resolver's block ends.

        With `autocommit`, each statement commits alone, saving the BEGIN and COMMIT round
        trips; only for work whose statements are each safe on their own, such as
        createTask's single INSERT. After-commit effects still run after the block.
        """
        services = self.services
        sessionmaker = services.autocommit_sessionmaker if autocommit else services.sessionmaker
        async with unit_of_work(sessionmaker) as uow:
            yield uow
