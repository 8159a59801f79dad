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
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """The operation's transaction: committed when the resolver's block ends."""
        async with unit_of_work(self.services.sessionmaker) as uow:
            yield uow
