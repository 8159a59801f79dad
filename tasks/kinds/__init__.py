"""The registry of task kinds: each module here but `kind` declares one `KIND`, and
`KINDS` maps every kind's name to it. Adding a kind is one module here (and its tests):
the GraphQL enum, the Celery queues, the checks and the CLI are made from the registry,
and the database takes any kind name of the registry's shape (docs/architecture.md, "How
to add a task kind").

May import `persistence` and the params models (`tasks.*_params`: pydantic only);
never `tasks.worker` (a kind names its work body as a string) nor `tasks.services`."""

from __future__ import annotations

import enum
import importlib
import pkgutil
from typing import TYPE_CHECKING

from tasks.kinds.kind import InputFile, Kind, WorkFunction

__all__ = ["DEFAULT_KIND", "KINDS", "InputFile", "Kind", "TaskKind", "WorkFunction", "in_order"]


def _discover() -> dict[str, Kind]:
    found: list[Kind] = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "kind":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, Kind):
            raise TypeError(f"{module.__name__} declares no KIND = Kind(...)")
        for other in found:
            if kind.name == other.name or kind.order == other.order:
                same = "name" if kind.name == other.name else f"order {kind.order}"
                raise ValueError(f"{module.__name__} declares the {same} of {other.name}")
        found.append(kind)
    if not found:
        raise ValueError("no module in tasks/kinds declares a kind")
    return {kind.name: kind for kind in sorted(found, key=lambda kind: kind.order)}


KINDS: dict[str, Kind] = _discover()


def in_order() -> list[Kind]:
    """Every kind, in the order of their `order` (the default first)."""
    return list(KINDS.values())


if TYPE_CHECKING:

    class TaskKind(enum.StrEnum):
        """The kinds' names as an enum (members made from the registry at import)."""

else:
    # The names as an enum, for the GraphQL schema and the MCP tools' input schemas. Code
    # never names a member: it reaches a kind through `KINDS`.
    TaskKind = enum.StrEnum("TaskKind", [(kind.name, kind.name) for kind in in_order()])

# What createTask runs when no kind is given.
DEFAULT_KIND = TaskKind(in_order()[0].name)
