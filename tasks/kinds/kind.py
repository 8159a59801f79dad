"""What a task kind is: one frozen `Kind`, declared once in a module of this package
and read by everything that needs it (the Celery app's queues and routes, the worker's
dispatch, the params checks, the CLI, the schema's descriptions)."""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from persistence.models import KIND_NAME_MAX_CHARS, KIND_NAME_PATTERN

# A work body: `async def body(running: RunningTask) -> Outcome | None`. Typed loosely
# here because the running-task interface lives in the worker, which kinds never import.
WorkFunction = Callable[[Any], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class InputFile:
    """The one input file a kind takes."""

    # As the sentence of an error names it: "an image", "a CSV or JSON file".
    what: str
    # File name endings that tell the CLI a file is for this kind.
    suffixes: frozenset[str]
    # Shown after `what` when a submission has the wrong number of files.
    formats: str = ""

    def described(self) -> str:
        return f"{self.what} ({self.formats})" if self.formats else self.what


@dataclass(frozen=True)
class Kind:
    """One kind of task, all of it: the GraphQL enum `TaskKind` and the CLI's choices are
    made from these names, and the `tasks.kind` column takes any name of their shape."""

    # Upper-case letters, digits and underscores, as the API and the database show it;
    # it never changes once tasks of the kind are stored.
    name: str
    # Where the kind stands in the lists made from the registry (the GraphQL enum, the
    # CLI's choices); the first is the default of createTask.
    order: int
    # "module:function" of its work body, imported when a task of the kind first runs,
    # so neither the API nor a worker serving other kinds loads what it needs.
    work: str
    # One line for the CLI's --kind help and the docs.
    summary: str
    # A kind that cannot run without a prompt refuses an empty one at submission.
    needs_prompt: bool = False
    # For a kind that runs without one, what a prompt does, as the schema's `prompt`
    # field says it ("guides the caption").
    prompt_help: str = ""
    # The pydantic model its `params` are checked against; None takes no params.
    params: type[BaseModel] | None = None
    # Its params in brief, as the schema's `params` field says them.
    params_help: str = ""
    input_file: InputFile | None = None

    def __post_init__(self) -> None:
        if len(self.name) > KIND_NAME_MAX_CHARS or not re.fullmatch(KIND_NAME_PATTERN, self.name):
            raise ValueError(
                f"a kind's name is upper-case letters, digits and underscores, at most "
                f"{KIND_NAME_MAX_CHARS} characters: not {self.name!r}"
            )

    @property
    def queue(self) -> str:
        """Its Celery queue: a queue per kind, so a flood of one never holds up another."""
        return self.name.lower()

    @property
    def task_name(self) -> str:
        """Its Celery task name, part of the wire format between API and workers (the
        kind's name, which the database holds, never changes either)."""
        return f"aitasks.{self.name.lower()}"

    def load_work(self) -> WorkFunction:
        """The work body, imported on first use."""
        return _imported(self.work)


@functools.cache
def _imported(path: str) -> WorkFunction:
    module, _, function = path.partition(":")
    work: WorkFunction = getattr(importlib.import_module(module), function)
    return work
