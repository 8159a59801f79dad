"""Reading tasks: `task` (the polling fallback) and the paginated `tasks` listing."""

from __future__ import annotations

import strawberry

from schema.context import Context
from schema.pagination import decode_cursor, encode_cursor
from schema.types import PageInfo, Task, TaskConnection, TaskEdge, TaskStatus
from tasks.services import submission

DEFAULT_PAGE_SIZE = 20


@strawberry.type
class Query:
    @strawberry.field(description="The task with this id; null when there is none.")
    async def task(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Task | None:
        async with info.context.unit_of_work() as uow:
            task = await submission.find_task(uow.session, str(id), info.context.owner)
        return Task.from_model(task) if task else None

    @strawberry.field(description="Tasks, newest first, optionally only those in one status.")
    async def tasks(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        status: TaskStatus | None = None,
    ) -> TaskConnection:
        page_key = decode_cursor(after) if after else None
        async with info.context.unit_of_work() as uow:
            tasks, has_next = await submission.list_tasks(
                uow.session,
                owner=info.context.owner,
                first=DEFAULT_PAGE_SIZE if first is None else first,
                after=page_key,
                status=status,
                settings=info.context.settings,
            )
        edges = [TaskEdge(cursor=encode_cursor(task), node=Task.from_model(task)) for task in tasks]
        return TaskConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None
            ),
        )
