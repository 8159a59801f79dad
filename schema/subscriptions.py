"""Live status: `taskStatus` over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from schema.context import Context
from schema.types import TaskUpdate
from tasks.watching import watch_task


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The task as it is now, then each change in order; completes after "
        "COMPLETED, FAILED or CANCELLED. With `after`, only changes whose sequence is "
        "greater. An unknown id is an error."
    )
    async def task_status(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, after: int | None = None
    ) -> AsyncGenerator[TaskUpdate, None]:
        services = info.context.services
        updates = watch_task(
            services.sessionmaker,
            services.hub,
            str(id),
            after=after,
            resync_seconds=services.settings.subscription_resync_seconds,
        )
        async for task in updates:
            yield TaskUpdate.from_model(task)
