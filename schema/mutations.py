"""Submitting work: `createTask`."""

from __future__ import annotations

import strawberry

from schema.context import Context
from schema.types import CreateTaskInput, CreateTaskResult, Task, ValidationError
from tasks import submission
from tasks.errors import InvalidInputError


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Store a task and queue it. Answers at once with the PENDING task, or "
        "with a ValidationError (and nothing stored) when the input cannot be run."
    )
    async def create_task(
        self, info: strawberry.Info[Context, None], input: CreateTaskInput
    ) -> CreateTaskResult:
        new_task = submission.NewTask(prompt=input.prompt, model=input.model, kind=input.kind)
        services = info.context.services
        try:
            async with info.context.unit_of_work() as uow:
                task = await submission.create_task(
                    uow, new_task, services.dispatcher, services.redis, services.settings
                )
        except InvalidInputError as error:
            return ValidationError(field=error.field, message=error.message)
        return Task.from_model(task)
