"""Submitting and controlling work: `createTask`, `cancelTask`, `retryTask`."""

from __future__ import annotations

import strawberry
from starlette.datastructures import UploadFile

from persistence.settings import Settings
from schema.context import Context
from schema.operation_metrics import TASKS_CREATED
from schema.types import (
    CreateTaskInput,
    CreateTaskResult,
    RateLimited,
    Task,
    TaskControlResult,
    TaskFileInput,
    TaskNotFound,
    TaskStateError,
    ValidationError,
)
from tasks.errors import InvalidInputError, TaskLimitError, TaskNotFoundError
from tasks.errors import TaskStateError as TaskStateProblem
from tasks.services import submission
from tasks.services.files import NewFile


def _control_error(task_id: strawberry.ID, error: Exception) -> TaskControlResult:
    if isinstance(error, TaskNotFoundError):
        return TaskNotFound(id=task_id, message=error.message)
    assert isinstance(error, TaskStateProblem)
    return TaskStateError(status=error.status, message=error.message)


async def _new_file(file: TaskFileInput, settings: Settings) -> NewFile:
    data = None
    upload: object = file.upload
    if upload is not None:
        if not isinstance(upload, UploadFile):
            # The scalar lets anything through: a string in JSON, a text form field.
            return NewFile(file.name, file.content_type, base64=file.base64, not_a_file=True)
        # One byte past the limit is enough to tell that a file is over it.
        data = await upload.read(settings.file_max_bytes + 1)
    return NewFile(file.name, file.content_type, base64=file.base64, data=data)


def _rate_limited(context: Context, error: TaskLimitError) -> RateLimited:
    seconds = None if error.retry_after_seconds is None else int(error.retry_after_seconds)
    response = context.response
    # Over HTTP the status says it too; a WebSocket has no status to set.
    if response is not None and hasattr(response, "status_code"):
        response.status_code = 429
        if seconds is not None:
            response.headers["Retry-After"] = str(seconds)
    return RateLimited(message=error.message, retry_after_seconds=seconds)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Store a task and queue it. Answers at once with the PENDING task, or "
        "with a ValidationError (and nothing stored) when the input cannot be run."
    )
    async def create_task(
        self, info: strawberry.Info[Context, None], input: CreateTaskInput
    ) -> CreateTaskResult:
        settings = info.context.settings
        new_task = submission.NewTask(
            owner=info.context.owner,
            prompt=input.prompt,
            params=input.params,
            files=tuple([await _new_file(file, settings) for file in input.files]),
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
            # Each statement of a plain create is safe alone: the INSERT (with its log
            # entry) is one statement, and the idempotency-key steps are each
            # conditional. Files are separate rows, stored in the task's transaction, and
            # the cap's count and insert are one step in one (see needs_transaction).
            transaction = submission.needs_transaction(new_task, settings)
            async with info.context.connection_unit(transaction=transaction) as unit:
                task = await submission.create_task(
                    unit,
                    new_task,
                    services.dispatcher,
                    services.settings,
                    services.limiter,
                    services.inserts,
                )
        except InvalidInputError as error:
            return ValidationError(field=error.field, message=error.message)
        except TaskLimitError as error:
            return _rate_limited(info.context, error)
        TASKS_CREATED.labels(task.kind).inc()
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
                task = await submission.cancel_task(
                    uow, str(id), info.context.services.dispatcher, owner=info.context.owner
                )
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
                task = await submission.retry_task(
                    uow,
                    str(id),
                    services.dispatcher,
                    owner=info.context.owner,
                    unfinished_max=services.settings.unfinished_tasks_max,
                )
        except (TaskNotFoundError, TaskStateProblem) as error:
            return _control_error(id, error)
        except TaskLimitError as error:
            return _rate_limited(info.context, error)
        return Task.from_model(task)
