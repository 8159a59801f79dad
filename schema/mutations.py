"""Submitting and controlling work: `createTask`, `cancelTask`, `retryTask`."""

from __future__ import annotations

import strawberry

from schema.context import Context
from schema.types import (
    CreateTaskInput,
    CreateTaskResult,
    Task,
    TaskControlResult,
    TaskNotFound,
    TaskStateError,
    ValidationError,
)
from tasks import submission
from tasks.errors import InvalidInputError, TaskNotFoundError
from tasks.errors import TaskStateError as TaskStateProblem


def _control_error(task_id: strawberry.ID, error: Exception) -> TaskControlResult:
    if isinstance(error, TaskNotFoundError):
        return TaskNotFound(id=task_id, message=error.message)
    assert isinstance(error, TaskStateProblem)
    return TaskStateError(status=error.status, message=error.message)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Store a task and queue it. Answers at once with the PENDING task, or "
        "with a ValidationError (and nothing stored) when the input cannot be run."
    )
    async def create_task(
        self, info: strawberry.Info[Context, None], input: CreateTaskInput
    ) -> CreateTaskResult:
        new_task = submission.NewTask(
            prompt=input.prompt,
            model=input.model,
            kind=input.kind,
            priority=input.priority,
            run_at=input.run_at,
            delay_seconds=input.delay_seconds,
            idempotency_key=input.idempotency_key,
            timeout_seconds=input.timeout_seconds,
        )
        services = info.context.services
        try:
            # Each statement of a create is safe alone: the INSERT (with its log entry) is
            # one statement, and the idempotency-key steps are each conditional.
            async with info.context.unit_of_work(autocommit=True) as uow:
                task = await submission.create_task(
                    uow, new_task, services.dispatcher, services.settings
                )
        except InvalidInputError as error:
            return ValidationError(field=error.field, message=error.message)
        return Task.from_model(task)

    @strawberry.mutation(
        description="Cancel a task. A PENDING one ends CANCELLED at once and never runs; a "
        "PROCESSING one stops within about a second and ends CANCELLED, keeping its output "
        "so far. Cancelling a CANCELLED task changes nothing; a COMPLETED or FAILED one "
        "gives a TaskStateError."
    )
    async def cancel_task(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> TaskControlResult:
        try:
            async with info.context.unit_of_work() as uow:
                task = await submission.cancel_task(uow, str(id), info.context.services.dispatcher)
        except (TaskNotFoundError, TaskStateProblem) as error:
            return _control_error(id, error)
        return Task.from_model(task)

    @strawberry.mutation(
        description="Queue a FAILED or CANCELLED task again. Its error history stays in "
        "`errors`; `attempts` goes up when it starts. Any other status gives a "
        "TaskStateError."
    )
    async def retry_task(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> TaskControlResult:
        services = info.context.services
        try:
            async with info.context.unit_of_work() as uow:
                task = await submission.retry_task(uow, str(id), services.dispatcher)
        except (TaskNotFoundError, TaskStateProblem) as error:
            return _control_error(id, error)
        return Task.from_model(task)
