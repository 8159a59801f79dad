"""Live status over graphql-transport-ws: one task (`taskStatus`) or all (`taskUpdates`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from schema.context import Context
from schema.operation_metrics import SUBSCRIPTIONS
from schema.types import TaskStatus, TaskUpdate
from tasks.services.watching import Update, watch_task, watch_tasks


async def follow_task(
    context: Context, task_id: str, after: int | None
) -> AsyncGenerator[Update, None]:
    """What `taskStatus` sends, before it becomes GraphQL: the resolver's body, also run
    by the WebSocket layer's shared path (graphql_app/ws/graphql_ws.py)."""
    services = context.services
    updates = watch_task(
        services.sessionmaker, services.hub, task_id, owner=context.owner, after=after
    )
    with SUBSCRIPTIONS.track_inprogress():
        async for update in updates:
            yield update


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The task as it is now, then each change in order; completes after "
        "COMPLETED, FAILED or CANCELLED. With `after: n`, exactly the changes with a "
        "sequence greater than n (to resume after a reconnect), then live ones. No change "
        "is skipped, repeated or reordered. An unknown id is an error."
    )
    async def task_status(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, after: int | None = None
    ) -> AsyncGenerator[TaskUpdate, None]:
        async for update in follow_task(info.context, str(id), after):
            yield TaskUpdate.from_update(update)

    @strawberry.subscription(
        description="Changes of every task from now on, for list views: each task's in "
        "order without gaps, starting with its whole state. With `status`, only updates "
        "that leave a task in one of these statuses."
    )
    async def task_updates(
        self, info: strawberry.Info[Context, None], status: list[TaskStatus] | None = None
    ) -> AsyncGenerator[TaskUpdate, None]:
        services = info.context.services
        updates = watch_tasks(
            services.sessionmaker,
            services.hub,
            owner=info.context.owner,
            statuses=frozenset(status) if status else None,
            resync_seconds=services.settings.subscription_resync_seconds,
        )
        with SUBSCRIPTIONS.track_inprogress():
            async for update in updates:
                yield TaskUpdate.from_update(update)
