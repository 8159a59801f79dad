"""The registry of task kinds (tasks/kinds) is the one place a kind is declared: every
part that needs to know the kinds reads it, and what it names exists."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import click
import pytest
from graphql import GraphQLEnumType, GraphQLInputObjectType

from graphql_app.cli.commands import _kind_of, submit
from persistence.settings import Settings
from schema import schema, types
from schema.internals import graphql_schema
from tasks.celery_app import MAINTENANCE_QUEUE, create_celery_app
from tasks.kinds import DEFAULT_KIND, KINDS, InputFile, Kind, TaskKind, in_order
from tasks.worker.app import all_queues, create_worker_app

SETTINGS = Settings(
    database_url="postgresql://aitasks@127.0.0.1:5432/aitasks",
    redis_url="redis://127.0.0.1:6379/0",
)


def test_the_graphql_enum_lists_the_registrys_kinds_in_their_order() -> None:
    names = [kind.name for kind in in_order()]
    built = graphql_schema(schema)
    enum = built.get_type("TaskKind")
    create_input = built.get_type("CreateTaskInput")

    assert isinstance(enum, GraphQLEnumType)
    assert isinstance(create_input, GraphQLInputObjectType)
    assert names == list(TaskKind) == list(enum.values)
    assert [kind.order for kind in in_order()] == sorted(kind.order for kind in in_order())
    assert create_input.fields["kind"].default_value == DEFAULT_KIND == names[0]


@pytest.mark.parametrize("name", ["echo", "1ECHO", "ECHO-2", "ECHO\n", "E" * 21, ""])
def test_a_kind_whose_name_the_column_would_refuse_is_refused_at_import(name: str) -> None:
    with pytest.raises(ValueError, match="upper-case letters, digits and underscores"):
        Kind(name=name, order=99, work="tasks.worker.bodies.echo:echo", summary="echo")


@pytest.mark.parametrize("kind", in_order(), ids=lambda kind: kind.name)
def test_every_kind_names_a_work_body_that_exists(kind: Kind) -> None:
    work = kind.load_work()

    assert asyncio.iscoroutinefunction(work)
    assert work is kind.load_work()


def test_the_celery_app_routes_each_kind_to_its_own_queue() -> None:
    app = create_celery_app(SETTINGS, "redis://127.0.0.1:6379/0")
    try:
        routes = app.conf.task_routes
        queues = [queue.name for queue in app.conf.task_queues]
    finally:
        app.close()

    assert {kind.task_name: routes[kind.task_name]["queue"] for kind in in_order()} == {
        kind.task_name: kind.queue for kind in in_order()
    }
    assert queues == [*(kind.queue for kind in in_order()), MAINTENANCE_QUEUE]
    assert len({kind.queue for kind in in_order()}) == len(KINDS)


def test_the_worker_runs_a_task_of_every_kind_and_serves_every_queue() -> None:
    app = create_worker_app(SETTINGS)
    try:
        registered = set(app.tasks)
    finally:
        app.close()

    assert {kind.task_name for kind in in_order()} <= registered
    assert all_queues() == [*(kind.queue for kind in in_order()), MAINTENANCE_QUEUE]


def test_the_clis_kind_choices_are_the_registry() -> None:
    [option] = [param for param in submit.params if param.name == "kind"]
    assert isinstance(option.type, click.Choice)

    assert list(option.type.choices) == [kind.name for kind in in_order()]
    help_text = option.get_help_record(click.Context(submit))
    assert help_text is not None
    assert all(kind.summary in help_text[1] for kind in in_order())


@pytest.mark.parametrize(
    "kind", [kind for kind in in_order() if kind.input_file], ids=lambda kind: kind.name
)
def test_the_cli_tells_a_kind_from_its_input_files_name(kind: Kind) -> None:
    assert kind.input_file is not None
    for suffix in kind.input_file.suffixes:
        assert _kind_of(None, (Path(f"input{suffix.upper()}"),)) == kind.name


def test_the_schemas_descriptions_of_a_new_task_come_from_the_registry() -> None:
    create_input = schema.get_type_by_name("CreateTaskInput")
    assert create_input is not None
    fields = {field.python_name: field.description or "" for field in create_input.fields}

    for kind in in_order():
        if kind.needs_prompt:
            assert kind.name in fields["prompt"].partition(";")[0]
        else:
            assert f"for {kind.name} it {kind.prompt_help}" in fields["prompt"]
        if kind.params:
            assert f"{kind.name}: {kind.params_help}." in fields["params"]
        if kind.input_file:
            assert kind.input_file.what.partition(" ")[2] in fields["files"]


def test_a_change_to_a_kind_changes_the_schemas_descriptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    changed = dataclasses.replace(
        KINDS["DATA_ANALYSIS"],
        prompt_help="reads the tea leaves",
        params_help="{leaves}",
        input_file=InputFile(what="a teacup", suffixes=frozenset({".cup"})),
    )
    kinds = [changed if kind.name == changed.name else kind for kind in in_order()]
    monkeypatch.setattr(types, "in_order", lambda: kinds)

    assert "for DATA_ANALYSIS it reads the tea leaves." in types._prompt_description()
    assert "DATA_ANALYSIS: {leaves}." in types._params_description()
    assert types._files_description() == "Input files: one image, or one teacup."
