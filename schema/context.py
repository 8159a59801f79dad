"""What every resolver gets: the services built at start-up and the request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from asyncpg import Pool
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from persistence.creation import TaskInserts
from persistence.settings import Settings
from persistence.unit_of_work import ConnectionUnit, UnitOfWork, connection_unit, unit_of_work
from tasks.errors import Unauthenticated
from tasks.event_hub import TaskEventHub
from tasks.services.callers import Caller, KeyChecker
from tasks.services.dispatch import Dispatcher
from tasks.services.rate_limits import RateLimiter


@dataclass(frozen=True)
class Services:
    """Built once in the API's lifespan and shared by every request."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    # The driver's own pool, for createTask's statements (`persistence.creation`).
    pool: Pool
    # Plain creates from concurrent requests, stored by one statement.
    inserts: TaskInserts
    hub: TaskEventHub
    dispatcher: Dispatcher
    keys: KeyChecker
    limiter: RateLimiter


@dataclass
class Context:
    services: Services
    request: Any
    response: Any
    # Who is calling: set before any operation runs (a request without a valid key never
    # reaches one).
    caller: Caller | None = None
    # What a WebSocket client sent in `connection_init`.
    connection_params: Any = None

    @property
    def owner(self) -> str:
        """The caller's name, which owns the tasks it creates and is all it may see."""
        if self.caller is None:
            raise Unauthenticated
        return self.caller.name

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def artifact_url(self, task_id: str, name: str) -> str:
        """An absolute download URL: on the configured public URL, else on the host and
        scheme the client used to reach this request (a WebSocket's ws/wss become
        http/https)."""
        base = self.settings.public_url or str(self.request.base_url)
        if base.startswith("ws"):
            base = "http" + base.removeprefix("ws")
        return f"{base.rstrip('/')}{artifact_path(task_id, name)}"

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """The operation's transaction: committed when the resolver's block ends."""
        async with unit_of_work(self.services.sessionmaker) as uow:
            yield uow

    def connection_unit(self, *, transaction: bool) -> AbstractAsyncContextManager[ConnectionUnit]:
        """The driver's connection, for createTask (see `persistence.unit_of_work`)."""
        return connection_unit(self.services.pool, transaction=transaction)


def artifact_path(task_id: str, name: str) -> str:
    return f"/tasks/{task_id}/artifacts/{quote(name, safe='')}"
