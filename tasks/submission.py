"""The submission service: what GraphQL resolvers (and later MCP tools) call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_app.settings import Settings
from persistence import repository
from persistence.events import creation_event, publish
from persistence.models import MODEL_NAME_MAX_CHARS, Task, TaskKind, TaskStatus
from persistence.repository import PageKey
from persistence.unit_of_work import UnitOfWork
from tasks.celery_app import TASK_NAMES
from tasks.dispatch import Dispatcher
from tasks.errors import InvalidInputError


@dataclass(frozen=True)
class NewTask:
    prompt: str
    model: str | None
    kind: TaskKind


def _check_text(field: str, value: str) -> None:
    """Text PostgreSQL can store: valid UTF-8 (no lone surrogates) and no NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(field, f"The {field} is not valid Unicode text.") from None
    if "\x00" in value:
        raise InvalidInputError(field, f"The {field} contains a NUL character, which is not text.")


def _check_prompt(prompt: str, settings: Settings) -> None:
    _check_text("prompt", prompt)
    if not prompt.strip():
        raise InvalidInputError("prompt", "The prompt is empty; write what the task should do.")
    if len(prompt) > settings.prompt_max_chars:
        raise InvalidInputError(
            "prompt",
            f"The prompt is {len(prompt):,} characters long; the limit is "
            f"{settings.prompt_max_chars:,} (AITASKS_PROMPT_MAX_CHARS).",
        )


def _check_model(model: str, settings: Settings) -> None:
    _check_text("model", model)
    if len(model) > MODEL_NAME_MAX_CHARS or not model.strip():
        raise InvalidInputError("model", "The model name is empty or too long.")
    if model not in settings.allowed_models and not settings.any_model_allowed:
        available = ", ".join(sorted(settings.allowed_models))
        raise InvalidInputError("model", f"Unknown model {model!r}. Available models: {available}.")


def _check_kind(kind: TaskKind) -> None:
    if kind not in TASK_NAMES:
        available = ", ".join(sorted(TASK_NAMES))
        raise InvalidInputError(
            "kind", f"{kind.value} tasks are not available yet. Available kinds: {available}."
        )


def validate(new_task: NewTask, settings: Settings) -> str:
    """Check a submission; return the model it will run on."""
    _check_prompt(new_task.prompt, settings)
    model = new_task.model if new_task.model is not None else settings.effective_default_model
    _check_model(model, settings)
    _check_kind(new_task.kind)
    return model


async def create_task(
    uow: UnitOfWork, new_task: NewTask, dispatcher: Dispatcher, redis: Redis, settings: Settings
) -> Task:
    """Store a PENDING task and, once that is committed, hand it to the workers and
    announce it to live feeds.

    Raises InvalidInputError, storing nothing, when the input cannot be run.
    """
    model = validate(new_task, settings)
    task = await repository.insert_task(
        uow.session, kind=new_task.kind, prompt=new_task.prompt, model=model
    )
    uow.after_commit(partial(dispatcher.enqueue, task))
    uow.after_commit(partial(publish, redis, creation_event(task)))
    return task


def parse_task_id(task_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        return None


async def find_task(session: AsyncSession, task_id: str) -> Task | None:
    """The task with this id, or None for an id that is unknown or not a task id at all."""
    parsed = parse_task_id(task_id)
    return await repository.get_task(session, parsed) if parsed else None


async def list_tasks(
    session: AsyncSession,
    *,
    first: int,
    after: PageKey | None,
    status: TaskStatus | None,
    settings: Settings,
) -> tuple[list[Task], bool]:
    """A page of tasks, newest first, and whether more follow."""
    if not 1 <= first <= settings.page_size_max:
        raise InvalidInputError(
            "first", f"`first` must be between 1 and {settings.page_size_max}, not {first}."
        )
    tasks = await repository.list_tasks(session, limit=first + 1, after=after, status=status)
    return tasks[:first], len(tasks) > first
