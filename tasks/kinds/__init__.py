"""The registry of task kinds: each module here but `kind` declares one `KIND`, and
`KINDS` maps every kind's name to it. Adding a kind is one module here (and its
tests); the name is also a `TaskKind` value, and a migration widens the column's check
constraint (docs/architecture.md, "How to add a task kind").

May import `persistence` and the params models (`tasks.*_params`: pydantic only);
never `tasks.worker` (a kind names its work body as a string) nor `tasks.services`."""

from __future__ import annotations

import importlib
import pkgutil

from persistence.models import TaskKind
from tasks.kinds.kind import InputFile, Kind, WorkFunction

__all__ = ["KINDS", "InputFile", "Kind", "WorkFunction", "in_order"]


def _discover() -> dict[TaskKind, Kind]:
    kinds: dict[TaskKind, Kind] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "kind":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, Kind):
            raise TypeError(f"{module.__name__} declares no KIND = Kind(...)")
        if kind.name in kinds:
            raise ValueError(f"{module.__name__} declares {kind.name.value} a second time")
        kinds[kind.name] = kind
    missing = [name.value for name in TaskKind if name not in kinds]
    if missing:
        raise ValueError(f"no module in tasks/kinds declares {', '.join(missing)}")
    return kinds


KINDS: dict[TaskKind, Kind] = _discover()


def in_order() -> list[Kind]:
    """Every kind, in the order TaskKind lists them (the default first)."""
    return [KINDS[name] for name in TaskKind]
