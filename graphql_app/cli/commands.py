"""The `aitasks` command: a terminal client for tasks, API keys, and the servers."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click

from persistence.settings import (
    ConfigurationError,
    Settings,
    export_service_urls,
    get_settings,
)

TASKS, KEYS, SERVER = "Tasks", "API keys", "Server and operations"
SECTIONS = (TASKS, KEYS, SERVER)
SECTION_OF = {
    **dict.fromkeys(("submit", "status", "list", "cancel", "retry"), TASKS),
    "keys": KEYS,
    **dict.fromkeys(
        ("run", "api", "worker", "migrate", "inspect", "worker-health", "flower", "mcp"), SERVER
    ),
}
# Commands that talk to a running API: library INFO lines would only be noise there.
CLIENT_COMMANDS = frozenset({"submit", "status", "list", "cancel", "retry", "keys"})
# Old names of environment variables, still read, with a line saying the new one.
DEPRECATED_NAMES = {"AITASKS_KEY": "AITASKS_API_KEY"}


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None


def _service_settings() -> Settings:
    """Settings with the database and Redis URLs: configured, else those of the
    `aitasks run` that announced itself in the data directory."""
    settings = _settings()
    if not (settings.database_url and settings.redis_url):
        from graphql_app.cli import devstack

        stack = devstack.find(settings.data_dir)
        if stack is not None:
            export_service_urls(
                settings.database_url or stack.database_url, settings.redis_url or stack.redis_url
            )
            settings = _settings()
    try:
        settings.require_services()
    except ConfigurationError as error:
        where = settings.data_dir.resolve()
        raise click.ClickException(
            f"{error} (No running `aitasks run` announced itself in {where}: run this "
            "command in the directory where `aitasks run` runs, or set AITASKS_DATA_DIR.)"
        ) from None
    return settings


def _configure_logging(quiet: bool) -> None:
    import logging

    from tasks import logs

    try:
        json_lines = get_settings().json_logs
    except ConfigurationError:
        json_lines = False  # the command itself reports the configuration problem
    logs.configure(json_lines, level=logging.WARNING if quiet else logging.INFO)
    # platformdirs (asked by pgserver for a lock path) warns when XDG_RUNTIME_DIR is
    # unset, as in containers and over ssh: nothing to act on, since it falls back to /tmp.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class SectionedGroup(click.Group):
    """A command group whose help lists its commands under headings."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for section in SECTIONS:
            rows = [
                (name, command.get_short_help_str(limit=formatter.width))
                for name in SECTION_OF
                if SECTION_OF[name] == section
                and (command := self.get_command(ctx, name)) is not None
                and not command.hidden
            ]
            if rows:
                with formatter.section(section):
                    formatter.write_dl(rows)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=SectionedGroup, context_settings=CONTEXT)
@click.version_option(version("aitasks"), "-V", "--version", prog_name="aitasks")
@click.pass_context
def main(ctx: click.Context) -> None:
    """aitasks: long-running AI work with live status over GraphQL.

    \b
    Start everything on this machine:   aitasks run        (or `make run`)
    Then, in another terminal:          aitasks submit --watch 'Write a haiku'

    The task commands find the `aitasks run` started in this directory by themselves;
    elsewhere set AITASKS_API_URL and AITASKS_API_KEY. `aitasks COMMAND -h` tells more.
    """
    _configure_logging(quiet=ctx.invoked_subcommand in CLIENT_COMMANDS)


@main.command(short_help="Start everything here, for development or a first try.")
@click.option("--flower", "with_flower", is_flag=True, help="Also serve Flower on port 5555.")
def run(with_flower: bool) -> None:
    """Start everything in the foreground: PostgreSQL and Redis (embedded ones, with their
    data in AITASKS_DATA_DIR, unless AITASKS_DATABASE_URL / AITASKS_REDIS_URL are set),
    the API and a worker per kind of task. Says "ready" once each of them answers, and
    writes where they are into AITASKS_DATA_DIR/stack.json, where the other commands
    look. Ctrl-C, SIGTERM or SIGHUP stops all of it; if any part fails or stops, all of
    it stops with the reason and exit code 1."""
    from graphql_app.cli import supervisor

    sys.exit(supervisor.run(_settings(), flower=with_flower))


@main.command(short_help="Serve the GraphQL API.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="API processes on one port, each with its own Redis subscription (default: "
    "AITASKS_API_WORKERS, else one per core in production and one in development).",
)
def api(workers: int | None) -> None:
    """Serve the GraphQL API (needs AITASKS_DATABASE_URL and AITASKS_REDIS_URL)."""
    from graphql_app.http.server import serve

    settings = _service_settings()
    serve(settings, workers)


async def _serve_mcp(settings: Settings, key: str | None) -> None:
    from graphql_app.auth import authenticate
    from graphql_app.http.app import open_services
    from graphql_app.mcp.server import build_mcp_server

    async with open_services(settings) as services:
        caller = await authenticate(services, key)
        if caller is None:
            raise ConfigurationError(
                "AITASKS_API_KEY is not set or not a valid key: set it to a key from "
                "`aitasks keys create --name NAME`."
            )
        await build_mcp_server(services, caller).run_stdio_async()


@main.command(short_help="Serve the MCP tools over stdio, for an AI agent.")
def mcp() -> None:
    """Serve the MCP tools over stdio, for an AI agent that starts this command. Needs
    AITASKS_DATABASE_URL, AITASKS_REDIS_URL and AITASKS_API_KEY, or finds the `aitasks
    run` of this directory and its development key. Logs go to stderr."""
    import asyncio

    from graphql_app.cli import devstack

    settings = _service_settings()
    key = os.environ.get("AITASKS_API_KEY")
    if not key and devstack.find(settings.data_dir) is not None:
        key = _development_key(settings)
    try:
        asyncio.run(_serve_mcp(settings, key))
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None


@main.command(short_help="Run a Celery worker for the task queues.")
@click.option(
    "--queues",
    help="Comma-separated queues to consume: text_generation, image_processing, "
    "data_analysis, maintenance (default: all of them).",
)
@click.option(
    "--beat/--no-beat",
    default=True,
    help="Also run the sweeps and the reconciler (in the main process).",
)
@click.option("--concurrency", type=int, help="Worker processes (default: one per core).")
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    envvar="AITASKS_WORKER_METRICS_PORT",
    help="Serve Prometheus metrics on this port (default 0: not served).",
)
@click.option("--quiet", is_flag=True, help="Leave out Celery's start-up banner.")
def worker(
    queues: str | None, beat: bool, concurrency: int | None, metrics_port: int, quiet: bool
) -> None:
    """Run a Celery worker for the task queues (needs AITASKS_DATABASE_URL and
    AITASKS_REDIS_URL, or a running `aitasks run`)."""
    if metrics_port:
        # Before anything imports prometheus_client: then the pool processes count into
        # files there, which the main process sums (its multiprocess mode).
        if "prometheus_client" in sys.modules:
            raise click.ClickException("metrics were set up too late (prometheus_client loaded)")
        directory = tempfile.mkdtemp(prefix="aitasks-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        owner = os.getpid()

        def remove_directory() -> None:
            # Only the main process: a pool process that ran exit handlers must not.
            if os.getpid() == owner:
                shutil.rmtree(directory, ignore_errors=True)

        atexit.register(remove_directory)
    from tasks.worker.app import check_queues, start_worker

    settings = _service_settings()
    names = [name.strip() for name in queues.split(",")] if queues is not None else None
    try:
        if names is not None:
            check_queues(names)
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None
    if metrics_port:
        from tasks.worker.metrics_server import serve

        serve(settings, metrics_port, settings.host)
    if quiet:
        # `aitasks run` in a container runs as root: Celery's warning about it would be
        # repeated by every worker on every start, with nothing a developer can change.
        from celery.exceptions import SecurityWarning

        warnings.filterwarnings("ignore", category=SecurityWarning)
    start_worker(
        settings,
        queues=names,
        beat=beat,
        concurrency=concurrency or settings.worker_concurrency,
        quiet=quiet,
    )


def _deprecated_env(name: str) -> str | None:
    """The value of an old variable name, saying once which name replaces it."""
    value = os.environ.get(name)
    if value:
        click.echo(f"aitasks: {name} is deprecated; set {DEPRECATED_NAMES[name]} instead", err=True)
    return value or None


def _api_url(url: str | None, settings: Settings) -> str:
    if not url:
        from graphql_app.cli import devstack

        stack = devstack.find(settings.data_dir)
        url = stack.api_url if stack else f"http://{settings.host}:{settings.port}"
    url = url.rstrip("/")
    return url if url.endswith("/graphql") else f"{url}/graphql"


def _development_key(settings: Settings) -> str | None:
    """The key `aitasks run` made and keeps in the data directory, if there is one."""
    from graphql_app.cli import keys as keys_cli

    kept = settings.data_dir.resolve() / keys_cli.DEVELOPMENT_KEY_FILE
    return kept.read_text().strip() if kept.exists() else None


def _server(url: str | None, key: str | None) -> Any:
    from graphql_app.cli import keys as keys_cli
    from graphql_app.cli.terminal import Server

    settings = _settings()
    source = "AITASKS_API_KEY or --key"
    if key is None and (key := _deprecated_env("AITASKS_KEY")) is not None:
        source = "AITASKS_KEY"
    if key is None:
        key = _development_key(settings)
        source = str(settings.data_dir / keys_cli.DEVELOPMENT_KEY_FILE)
    return Server(_api_url(url, settings), key, source)


def _output(as_json: bool) -> Any:
    from graphql_app.cli.terminal import Output

    return Output(json=as_json)


def _client_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON for scripts instead of text."
    )(command)
    command = click.option(
        "--url",
        envvar="AITASKS_API_URL",
        metavar="URL",
        help="The API's address, e.g. http://127.0.0.1:8000 [env: AITASKS_API_URL; "
        "default: the `aitasks run` of this directory, else http://127.0.0.1:8000].",
    )(command)
    return click.option(
        "--key",
        envvar="AITASKS_API_KEY",
        metavar="KEY",
        help="API key [env: AITASKS_API_KEY; default: the development key `aitasks run` made].",
    )(command)


def _read_prompt(prompt: str | None) -> str:
    if prompt == "-":
        return sys.stdin.read()
    return prompt or ""


def _read_params(value: str | None) -> Any:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as error:
            raise click.BadParameter(
                f"cannot read {value[1:]}: {error.strerror}", param_hint="--params"
            ) from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not valid JSON ({error})", param_hint="--params") from None


class KindChoice(click.Choice):
    """The task kinds of the registry (tasks/kinds), read only when `submit` needs them:
    the registry loads SQLAlchemy, which the other commands start without."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from tasks.kinds import in_order

        return tuple(kind.name for kind in in_order())

    @choices.setter
    def choices(self, _: object) -> None:
        pass


class KindOption(click.Option):
    """--kind, its help ending with each kind's summary from the registry."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from tasks.kinds import in_order

        record = super().get_help_record(ctx)
        if record is None:
            return None
        kinds = "; ".join(f"{kind.name}: {kind.summary}" for kind in in_order())
        return record[0], f"{record[1]} {kinds}."


def _kind_of(kind: str | None, files: tuple[Path, ...]) -> str:
    from tasks.kinds import DEFAULT_KIND, in_order

    if kind:
        return kind
    if not files:
        return DEFAULT_KIND
    suffix = files[0].suffix.lower()
    with_files = [found for found in in_order() if found.input_file]
    for found in with_files:
        if found.input_file and suffix in found.input_file.suffixes:
            return found.name
    raise click.UsageError(
        f"cannot tell the kind of task from {files[0].name}: give "
        + " or ".join(f"--kind {found.name}" for found in with_files)
    )


def _check_input(kind: str, prompt: str, files: tuple[Path, ...]) -> None:
    from tasks.kinds import KINDS

    declared = KINDS[kind]
    if declared.needs_prompt and not prompt.strip():
        raise click.UsageError(
            "give a prompt: aitasks submit 'Write a haiku' (or - to read it from stdin)"
        )
    if declared.input_file and not files:
        raise click.UsageError(f"--kind {kind} needs --file PATH ({declared.input_file.what})")


@main.command(short_help="Create a task; --watch follows it to its end.")
@click.argument("prompt", required=False)
@click.option(
    "--kind",
    cls=KindOption,
    type=KindChoice(),
    help="What to do [default: from --file's type, else TEXT_GENERATION].",
)
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An input file: an image, or a CSV or JSON table.",
)
@click.option(
    "--params",
    metavar="JSON|@FILE",
    help="The kind's parameters as JSON, or @file.json to read them from a file.",
)
@click.option("--model", help="The model to run on [default: the server's].")
@click.option("--priority", type=click.Choice(["LOW", "NORMAL", "HIGH"]), help="Queue priority.")
@click.option("--watch", is_flag=True, help="Show the streamed text and progress until it ends.")
@_client_options
def submit(
    prompt: str | None,
    kind: str | None,
    files: tuple[Path, ...],
    params: str | None,
    model: str | None,
    priority: str | None,
    watch: bool,
    url: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Create a task and print its id; with --watch, show its streamed text and a
    progress bar until it ends.

    PROMPT is what to do; `-` reads it from stdin. Without --watch the id goes to stdout
    and a note to stderr. Exit code: 0 when created (with --watch: COMPLETED), 1 when
    refused, FAILED or CANCELLED, 2 when no aitasks API answers.

    \b
    Examples:
      aitasks submit --watch 'Write a haiku about queues'
      git log -5 | aitasks submit --watch -
      aitasks submit --file photo.jpg --params '{"operations": [{"op": "grayscale"}]}'
      aitasks submit --file sales.csv --params @analysis.json 'What sold best?'
    """
    from graphql_app.cli import terminal

    text = _read_prompt(prompt)
    kind = _kind_of(kind, files)
    _check_input(kind, text, files)
    task_input: dict[str, Any] = {"prompt": text, "kind": kind}
    for name, value in (("model", model), ("priority", priority), ("params", _read_params(params))):
        if value is not None:
            task_input[name] = value
    coroutine = terminal.submit(
        _server(url, key), task_input, files=list(files), follow=watch, output=_output(as_json)
    )
    sys.exit(terminal.run(coroutine))


@main.command(short_help="Show a task; --watch follows it.")
@click.argument("task_id")
@click.option("--watch", is_flag=True, help="Follow the task to its end, as submit --watch.")
@_client_options
def status(task_id: str, watch: bool, url: str | None, key: str | None, as_json: bool) -> None:
    """Show a task: status, progress, error and result. With --watch, follow it to its
    end (exit 0 if COMPLETED, 1 if FAILED or CANCELLED)."""
    from graphql_app.cli import terminal

    server, output = _server(url, key), _output(as_json)
    coroutine = (
        terminal.watch(server, task_id, output)
        if watch
        else terminal.status(server, task_id, output)
    )
    sys.exit(terminal.run(coroutine))


@main.command("list", short_help="List your tasks, newest first.")
@click.option("--first", default=20, show_default=True, help="How many, newest first.")
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]),
    help="Only tasks in this status.",
)
@_client_options
def list_command(
    first: int, status_filter: str | None, url: str | None, key: str | None, as_json: bool
) -> None:
    """List your tasks, newest first: id, status, progress, kind, model, created."""
    from graphql_app.cli import terminal

    coroutine = terminal.list_tasks(_server(url, key), first, status_filter, _output(as_json))
    sys.exit(terminal.run(coroutine))


@main.command(short_help="Cancel a task.")
@click.argument("task_id")
@_client_options
def cancel(task_id: str, url: str | None, key: str | None, as_json: bool) -> None:
    """Cancel a task. A PENDING one ends CANCELLED at once and never runs; a PROCESSING one
    stops within about a second and ends CANCELLED, keeping its output so far."""
    from graphql_app.cli import terminal

    sys.exit(terminal.run(terminal.cancel(_server(url, key), task_id, _output(as_json))))


@main.command(short_help="Run a FAILED or CANCELLED task again.")
@click.argument("task_id")
@click.option("--watch", is_flag=True, help="Follow the task to its end, as submit --watch.")
@_client_options
def retry(task_id: str, watch: bool, url: str | None, key: str | None, as_json: bool) -> None:
    """Queue a FAILED or CANCELLED task again, keeping its id and its error history."""
    from graphql_app.cli import terminal

    coroutine = terminal.retry(_server(url, key), task_id, follow=watch, output=_output(as_json))
    sys.exit(terminal.run(coroutine))


@main.command(short_help="Show the queues and what each worker runs.")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds to wait for workers.")
def inspect(timeout: float) -> None:
    """Summarise the queues (messages waiting) and the workers (tasks running)."""
    from tasks.worker.app import queue_depths, running_tasks

    settings = _service_settings()
    click.echo("queues (messages waiting):")
    for queue, depth in queue_depths(settings).items():
        click.echo(f"  {queue:<18} {depth}")
    workers = running_tasks(settings, timeout)
    click.echo(f"workers ({len(workers)} answered within {timeout:g} s):")
    for name, running in workers.items():
        click.echo(f"  {name:<40} {running} running")


@main.command("worker-health", short_help="Exit 0 if a worker on this host answers.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for answers.")
def worker_health(timeout: float) -> None:
    """Exit 0 if a worker on this host answers a ping (for container health checks)."""
    from tasks.worker.app import ping_local_workers

    settings = _service_settings()
    answered = ping_local_workers(settings, timeout)
    if not answered:
        raise click.ClickException(f"no worker on this host answered within {timeout:g} s")
    click.echo(f"ok: {', '.join(answered)}")


@main.command(short_help="Serve Flower, the Celery web UI.")
@click.option("--port", default=5555, show_default=True, help="Port of Flower's web UI.")
def flower(port: int) -> None:
    """Flower, the Celery web UI: workers, task names, arguments and states."""
    from tasks.worker.app import start_flower

    settings = _service_settings()
    start_flower(settings, port)


@main.command(short_help="Bring the database schema up to date.")
def migrate() -> None:
    """Bring the database schema up to date."""
    from persistence.migrate import upgrade_to_head

    settings = _settings()
    if not settings.database_url:
        raise click.ClickException(
            "AITASKS_DATABASE_URL is not set: set it to the PostgreSQL URL to migrate."
        )
    upgrade_to_head(settings.database_url)
    click.echo("aitasks: database is up to date")


@main.group(short_help="Create, list and revoke API keys.")
def keys() -> None:
    """Create, list and revoke API keys, in AITASKS_DATABASE_URL's database or, with none
    set, in the embedded one `aitasks run` uses (running or not)."""


@keys.command("create")
@click.option("--name", required=True, help="Who the key is for; keys with one name share tasks.")
def create_key(name: str) -> None:
    """Make a key and print it (once: only its digest is stored)."""
    from graphql_app.cli import keys as keys_cli
    from tasks.errors import InvalidInputError

    with keys_cli.database(_settings()) as database_url:
        try:
            made = keys_cli.new_key(database_url, name)
        except InvalidInputError as error:
            raise click.ClickException(error.message) from None
    click.echo(made.key)
    click.echo(
        f"aitasks: key {made.stored.id} for {name!r} created. Keep it now: it is not shown "
        "again. Send it as `Authorization: Bearer <key>`.",
        err=True,
    )


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of text.")
def list_keys(as_json: bool) -> None:
    """Every key: id, first characters, name, when created, whether revoked."""
    from graphql_app.cli import keys as keys_cli
    from graphql_app.cli.terminal import table

    with keys_cli.database(_settings()) as database_url:
        found = keys_cli.all_keys(database_url)
    if as_json:
        click.echo(json.dumps([keys_cli.as_json(key) for key in found], indent=2))
    elif not found:
        click.echo("No keys yet. Make one: aitasks keys create --name NAME")
    else:
        for line in table([keys_cli.HEADER, *(keys_cli.row(key) for key in found)]):
            click.echo(line)


@keys.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key, by its id, the start of its id (unique among active keys), or the
    first characters of the key that `keys list` shows. Running APIs refuse it within
    AITASKS_AUTH_CACHE_SECONDS."""
    from graphql_app.cli import keys as keys_cli

    with keys_cli.database(_settings()) as database_url:
        try:
            revoked = keys_cli.revoke(database_url, key_id)
        except keys_cli.KeyNotFound as error:
            raise click.ClickException(f"{error}; `aitasks keys list` shows the keys") from None
    click.echo(f"revoked: {keys_cli.describe(revoked)}")
