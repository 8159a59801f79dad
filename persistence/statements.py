"""The hot path's statements, built once from the model with SQLAlchemy Core and compiled
for asyncpg at import.

`createTask` (`persistence.creation`) and a worker's writes (`persistence.task_writes`)
run on the driver's own connection: per call, the ORM session's unit of work, its
statement cache lookups and its identity map cost more CPU than the round trip. So these
statements are compiled here once, to the SQL text asyncpg prepares on each connection,
and every column list in them is read from the model (`tasks`, `task_events`,
`task_files`): a column added to or dropped from the model reaches every statement, and
none is typed twice. Everything else goes through the ORM in `persistence.repository`.

asyncpg takes parameters by position. Each statement is compiled with its parameters
numbered in the order its caller passes them (the order named beside it below), so the
callers read as plain `fetchrow(STATEMENT, a, b, c)`.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    JSON,
    ClauseElement,
    ColumnElement,
    Float,
    Integer,
    Interval,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import BindParameter

from persistence.models import (
    CANCELLED_STAGE,
    DONE_STAGE,
    EVENT_STATE_COLUMNS,
    FAILED_STAGE,
    RETRY_STAGE,
    STARTING_STAGE,
    Task,
    TaskStatus,
    task_events,
    task_files,
)

DIALECT = asyncpg_dialect()
_PLACEHOLDER = re.compile(r"\$(\d+)")

tasks = Task.metadata.tables["tasks"]
# What a change logs in `task_events`: the task's id and new sequence, the columns an event
# carries as they now are, then the text it added and whether the result started over.
EVENT_COLUMNS = ("task_id", "sequence", *EVENT_STATE_COLUMNS, "delta", "result_reset")


def compiled(statement: ClauseElement, *parameters: str) -> str:
    """The statement as SQL text for asyncpg, `$1` being the first of `parameters`, `$2`
    the second, and so on (a parameter used twice keeps one number)."""
    sql = statement.compile(dialect=DIALECT)
    assert isinstance(sql, SQLCompiler)
    names = list(sql.positiontup or ())
    if sorted(names) != sorted(parameters):
        raise ValueError(f"the statement takes {names}, not {list(parameters)}")
    position = {name: parameters.index(name) + 1 for name in names}

    def renumber(match: re.Match[str]) -> str:
        return f"${position[names[int(match.group(1)) - 1]]}"

    return _PLACEHOLDER.sub(renumber, str(sql))


def constant(value: str) -> ColumnElement[Any]:
    """A string written into the SQL itself (a status or a stage), not sent as a parameter."""
    render = String().literal_processor(DIALECT)
    assert render is not None
    return literal_column(render(value))


def _param(name: str, type_: Any) -> BindParameter[Any]:
    return bindparam(name, type_=type_)


def _json_text(name: str, json_type: Any) -> ColumnElement[Any]:
    """JSON sent as text and cast by PostgreSQL, so the statement runs the same whatever
    JSON codec the connection has."""
    return cast(_param(name, Text), json_type)


def _logged(changed: Any, delta: ColumnElement[Any], result_reset: bool) -> Any:
    """The log entry of each row `changed` (a CTE returning whole task rows), as a CTE."""
    row = select(
        changed.c.id,
        changed.c.sequence,
        *(changed.c[name] for name in EVENT_STATE_COLUMNS),
        delta,
        true() if result_reset else false(),
    )
    return insert(task_events).from_select(EVENT_COLUMNS, row).cte("logged")


def _with_log(changing: Any, delta: ColumnElement[Any], *, result_reset: bool) -> Any:
    """A statement that changes task rows, logs each change, and returns the rows."""
    changed = changing.returning(*tasks.c).cte("changed")
    return select(*changed.c).add_cte(_logged(changed, delta, result_reset))


# createTask.

_NOW = func.now()
# Numbers written into the SQL, not sent as parameters.
_ZERO = literal_column("0", Integer)
_ONE = literal_column("1", Integer)
_NEW_TASK_COLUMNS = (
    "id",
    "owner",
    "kind",
    "prompt",
    "model",
    "status",
    "stage",
    "priority",
    "timeout_seconds",
)
# The order `creation.insert_task` passes them in; `delay` is NULL when there is none (now()
# + NULL is NULL), `enqueue_delay` how far ahead the message went to the broker.
INSERT_TASK_PARAMETERS = (
    *_NEW_TASK_COLUMNS,
    "idempotency_key",
    "params",
    "inputs",
    "delay",
    "enqueue_delay",
)


def _insert_task() -> Any:
    values = {name: _param(name, tasks.c[name].type) for name in _NEW_TASK_COLUMNS}
    return insert(tasks).values(
        **values,
        idempotency_key=_param("idempotency_key", tasks.c.idempotency_key.type),
        params=_json_text("params", JSON),
        inputs=_json_text("inputs", JSONB),
        scheduled_for=_NOW + _param("delay", Interval),
        enqueued_at=_NOW + _param("enqueue_delay", Interval),
    )


_NO_DELTA = null()
# The task and its creation's log entry (sequence 1), in one statement.
INSERT_TASK = compiled(
    _with_log(_insert_task(), _NO_DELTA, result_reset=True), *INSERT_TASK_PARAMETERS
)
# With an idempotency key, a second create with the same key stores nothing.
INSERT_KEYED_TASK = compiled(
    _with_log(
        _insert_task().on_conflict_do_nothing(
            index_elements=[tasks.c.owner, tasks.c.idempotency_key],
            index_where=tasks.c.idempotency_key.is_not(None),
        ),
        _NO_DELTA,
        result_reset=True,
    ),
    *INSERT_TASK_PARAMETERS,
)


# Plain creates of several requests in one statement (`creation.TaskInserts`): the rows and
# log entries of INSERT_TASK without an idempotency key, one per element of the arrays.
INSERT_TASKS_PARAMETERS = (*_NEW_TASK_COLUMNS, "params", "inputs", "delay", "enqueue_delay")
# Arrays of text carry no length: a cast to varchar(n) would cut a value too long for its
# column, where the INSERT refuses it.
_ARRAY_TYPES: dict[str, Any] = {
    "id": Uuid(),
    "timeout_seconds": Float(),
    "delay": Interval(),
    "enqueue_delay": Interval(),
}


def _insert_tasks() -> Any:
    arrays = (
        _param(f"{name}s", ARRAY(_ARRAY_TYPES.get(name, Text())))
        for name in INSERT_TASKS_PARAMETERS
    )
    new = func.unnest(*arrays).table_valued(*INSERT_TASKS_PARAMETERS).render_derived("new")
    rows = select(
        *(new.c[name] for name in _NEW_TASK_COLUMNS),
        cast(new.c.params, JSON),
        cast(new.c.inputs, JSONB),
        _NOW + new.c.delay,
        _NOW + new.c.enqueue_delay,
    )
    columns = (*_NEW_TASK_COLUMNS, "params", "inputs", "scheduled_for", "enqueued_at")
    return insert(tasks).from_select(columns, rows)


INSERT_TASKS = compiled(
    _with_log(_insert_tasks(), _NO_DELTA, result_reset=True),
    *(f"{name}s" for name in INSERT_TASKS_PARAMETERS),
)

FILE_COLUMNS = ("task_id", "role", "name", "content_type", "size", "data")
INSERT_FILE = compiled(
    insert(task_files).values(
        {name: _param(name, task_files.c[name].type) for name in FILE_COLUMNS}
    ),
    *FILE_COLUMNS,
)
_OWNER = _param("owner", tasks.c.owner.type)
_KEY = _param("idempotency_key", tasks.c.idempotency_key.type)
FIND_BY_IDEMPOTENCY_KEY = compiled(
    select(tasks).where(tasks.c.owner == _OWNER, tasks.c.idempotency_key == _KEY),
    "owner",
    "idempotency_key",
)
# Frees a key whose task was created before `older_than`.
RELEASE_IDEMPOTENCY_KEY = compiled(
    update(tasks)
    .where(
        tasks.c.owner == _OWNER,
        tasks.c.idempotency_key == _KEY,
        tasks.c.created_at < _param("older_than", tasks.c.created_at.type),
    )
    .values(idempotency_key=null()),
    "owner",
    "idempotency_key",
    "older_than",
)


# A worker's writes: each changes the task it holds, bumps `sequence` and logs the change,
# in one statement. Every one takes the task id first and the text the change appends to
# the result second (NULL for none).

_TASK_ID = _param("task_id", Uuid)
_DELTA = _param("delta", Text)
_ATTEMPT = _param("attempt", Integer)
_LEASE = _param("lease", Interval)
_ERROR = _param("error", Text)
_PROCESSING = constant(TaskStatus.PROCESSING.value)
# The result with the delta appended (NULL appends nothing).
_APPENDED = {"result": func.coalesce(tasks.c.result.concat(_DELTA), tasks.c.result, _DELTA)}
# Held by the worker whose claim number is `attempt`.
_HELD = and_(tasks.c.status == _PROCESSING, tasks.c.attempts == _ATTEMPT)
_ENDED = {**_APPENDED, "finished_at": _NOW, "lease_expires_at": null()}


def _with_error(transient: bool) -> dict[str, Any]:
    """The error added to the task's history, with the attempt it ended."""
    entry = func.jsonb_build_object(
        constant("attempt"),
        tasks.c.attempts,
        constant("message"),
        _ERROR,
        constant("at"),
        _NOW,
        constant("transient"),
        true() if transient else false(),
    )
    return {"errors": tasks.c.errors.op("||")(func.jsonb_build_array(entry))}


def _transition(
    condition: ColumnElement[bool], changes: dict[str, Any], *parameters: str, **log: bool
) -> str:
    changing = (
        update(tasks)
        .where(tasks.c.id == _TASK_ID, condition)
        .values(sequence=tasks.c.sequence + _ONE, updated_at=_NOW, **changes)
    )
    statement = _with_log(changing, _DELTA, result_reset=log.get("result_reset", False))
    return compiled(statement, "task_id", "delta", *parameters)


# Takes a PENDING task, or one whose lease ran out with fewer than `max_attempts` claims.
CLAIM = _transition(
    and_(
        tasks.c.cancel_requested_at.is_(None),
        or_(
            and_(
                tasks.c.status == constant(TaskStatus.PENDING.value),
                or_(tasks.c.scheduled_for.is_(None), tasks.c.scheduled_for <= _NOW),
            ),
            and_(
                tasks.c.status == _PROCESSING,
                tasks.c.lease_expires_at < _NOW,
                tasks.c.attempts < _param("max_attempts", Integer),
            ),
        ),
    ),
    {
        "status": _PROCESSING,
        "stage": constant(STARTING_STAGE),
        "attempts": tasks.c.attempts + _ONE,
        "progress": _ZERO,
        "result": null(),
        "started_at": func.coalesce(tasks.c.started_at, _NOW),
        "lease_expires_at": _NOW + _LEASE,
    },
    "lease",
    "max_attempts",
    result_reset=True,
)
RECORD_OUTPUT = _transition(
    _HELD,
    {
        **_APPENDED,
        "progress": _param("progress", Float),
        "stage": _param("stage", tasks.c.stage.type),
        "lease_expires_at": _NOW + _LEASE,
    },
    "attempt",
    "lease",
    "progress",
    "stage",
)
# The output and the artifacts are kept as they were when NULL.
COMPLETE = _transition(
    _HELD,
    {
        **_ENDED,
        "status": constant(TaskStatus.COMPLETED.value),
        "stage": constant(DONE_STAGE),
        "progress": _ONE,
        "output": func.coalesce(_json_text("output", JSON), tasks.c.output),
        "artifacts": func.coalesce(_json_text("artifacts", JSONB), tasks.c.artifacts),
    },
    "attempt",
    "output",
    "artifacts",
)
FAIL = _transition(
    _HELD,
    {
        **_ENDED,
        "status": constant(TaskStatus.FAILED.value),
        "stage": constant(FAILED_STAGE),
        "error": _ERROR,
        **_with_error(transient=False),
    },
    "attempt",
    "error",
)
FINISH_CANCELLED = _transition(
    _HELD,
    {**_ENDED, "status": constant(TaskStatus.CANCELLED.value), "stage": constant(CANCELLED_STAGE)},
    "attempt",
)
_RETRY_AT = _NOW + _param("delay", Interval)
RETRY_LATER = _transition(
    _HELD,
    {
        **_APPENDED,
        "status": constant(TaskStatus.PENDING.value),
        "stage": constant(RETRY_STAGE),
        **_with_error(transient=True),
        "scheduled_for": _RETRY_AT,
        "enqueued_at": _RETRY_AT,
        "lease_expires_at": null(),
    },
    "attempt",
    "error",
    "delay",
)
# Not changes a client sees, so `sequence` stays.
RENEW_LEASE = compiled(
    update(tasks)
    .where(tasks.c.id == _TASK_ID, _HELD)
    .values(lease_expires_at=_NOW + _LEASE)
    .returning(tasks.c.cancel_requested_at),
    "task_id",
    "attempt",
    "lease",
)
# `attempt`: the claim whose lease ends, or NULL for whichever holds the task. A second in
# the past, so a claim in the same transaction (whose now() is the same instant) finds it
# over too.
_ANY_OR_THIS_CLAIM = or_(_ATTEMPT.is_(None), tasks.c.attempts == _ATTEMPT)
RELEASE_LEASE = compiled(
    update(tasks)
    .where(
        tasks.c.id == _TASK_ID,
        tasks.c.status == _PROCESSING,
        tasks.c.lease_expires_at > _NOW,
        _ANY_OR_THIS_CLAIM,
    )
    .values(lease_expires_at=_NOW - literal_column("interval '1 second'"))
    .returning(tasks.c.attempts),
    "task_id",
    "attempt",
)
