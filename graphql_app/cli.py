"""The `aitasks` command."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import click

from graphql_app.settings import ConfigurationError, Settings, get_settings


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None


def _services(settings: Settings) -> tuple[str, str]:
    try:
        return settings.require_services()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None


def _configure_logging() -> None:
    from graphql_app import logs

    try:
        json_lines = get_settings().json_logs
    except ConfigurationError:
        json_lines = False  # the command itself reports the configuration problem
    logs.configure(json_lines)


@click.group()
def main() -> None:
    """aitasks: long-running AI work with live status over GraphQL."""
    _configure_logging()


@main.command()
@click.option("--flower", "with_flower", is_flag=True, help="Also serve Flower on port 5555.")
def run(with_flower: bool) -> None:
    """Start everything: embedded PostgreSQL and Redis (unless configured), API and workers."""
    from graphql_app import supervisor

    sys.exit(supervisor.run(_settings(), flower=with_flower))


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="API processes on one port, each with its own Redis subscription (default: "
    "AITASKS_API_WORKERS, else one per core in production and one in development).",
)
def api(workers: int | None) -> None:
    """Serve the GraphQL API (needs AITASKS_DATABASE_URL and AITASKS_REDIS_URL)."""
    from graphql_app.server import serve

    settings = _settings()
    _services(settings)
    serve(settings, workers)


async def _serve_mcp(settings: Settings, key: str | None) -> None:
    from graphql_app.app import open_services
    from graphql_app.auth import authenticate
    from graphql_app.mcp_server import build_mcp_server

    async with open_services(settings) as services:
        caller = await authenticate(services, key)
        if caller is None:
            raise ConfigurationError(
                "AITASKS_API_KEY is not set or not a valid key: set it to a key from "
                "`aitasks keys create --name NAME`."
            )
        await build_mcp_server(services, caller).run_stdio_async()


@main.command()
def mcp() -> None:
    """Serve the MCP tools over stdio, for an AI agent that starts this command (needs
    AITASKS_DATABASE_URL, AITASKS_REDIS_URL and AITASKS_API_KEY). Logs go to stderr."""
    import asyncio

    settings = _settings()
    _services(settings)
    try:
        asyncio.run(_serve_mcp(settings, os.environ.get("AITASKS_API_KEY") or None))
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None


@main.command()
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
def worker(queues: str | None, beat: bool, concurrency: int | None, metrics_port: int) -> None:
    """Run a Celery worker for the task queues."""
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
    from tasks.worker import check_queues, start_worker

    settings = _settings()
    _services(settings)
    names = [name.strip() for name in queues.split(",")] if queues is not None else None
    try:
        if names is not None:
            check_queues(names)
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None
    if metrics_port:
        from tasks.metrics import serve

        serve(settings, metrics_port, settings.host)
    start_worker(
        settings, queues=names, beat=beat, concurrency=concurrency or settings.worker_concurrency
    )


def _server(url: str | None, key: str | None) -> Any:
    from graphql_app.terminal import Server

    settings = _settings()
    url = url or f"http://{settings.host}:{settings.port}/graphql"
    if key is None:
        # `aitasks run` keeps its development key here.
        kept = settings.data_dir / "development-key"
        key = kept.read_text().strip() if kept.exists() else None
    return Server(url, key)


def _client_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option(
        "--url",
        envvar="AITASKS_API_URL",
        help="The API's GraphQL URL (default: http://AITASKS_HOST:AITASKS_PORT/graphql).",
    )(command)
    return click.option(
        "--key",
        envvar="AITASKS_API_KEY",
        help="API key (default: the development key `aitasks run` made).",
    )(command)


@main.command()
@click.argument("prompt", default="")
@click.option("--model", help="The model to run on (default: the server's).")
@click.option(
    "--kind",
    type=click.Choice(["TEXT_GENERATION", "IMAGE_PROCESSING", "DATA_ANALYSIS"]),
    default="TEXT_GENERATION",
    show_default=True,
)
@click.option("--watch/--no-watch", default=False, help="Follow the task to its end.")
@_client_options
def submit(
    prompt: str, model: str | None, kind: str, watch: bool, url: str | None, key: str | None
) -> None:
    """Create a task; with --watch, show its progress and streamed text until it ends
    (exit 0 if COMPLETED, 1 if FAILED or CANCELLED, 2 if the server is unreachable)."""
    from graphql_app import terminal

    task_input: dict[str, Any] = {"prompt": prompt, "kind": kind}
    if model:
        task_input["model"] = model
    server = _server(url, key)
    coroutine = terminal.submit(server, task_input, follow=watch, out=sys.stdout, err=sys.stderr)
    sys.exit(terminal.run(coroutine))


@main.command()
@click.argument("task_id")
@_client_options
def status(task_id: str, url: str | None, key: str | None) -> None:
    """Show a task: status, progress, error and result."""
    from graphql_app import terminal

    sys.exit(terminal.run(terminal.status(_server(url, key), task_id, sys.stdout)))


@main.command("list")
@click.option("--first", default=20, show_default=True, help="How many, newest first.")
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]),
)
@_client_options
def list_command(first: int, status_filter: str | None, url: str | None, key: str | None) -> None:
    """List your tasks, newest first."""
    from graphql_app import terminal

    coroutine = terminal.list_tasks(_server(url, key), first, status_filter, sys.stdout)
    sys.exit(terminal.run(coroutine))


@main.command()
@click.argument("task_id")
@_client_options
def cancel(task_id: str, url: str | None, key: str | None) -> None:
    """Cancel a task."""
    from graphql_app import terminal

    sys.exit(terminal.run(terminal.cancel(_server(url, key), task_id, sys.stdout)))


@main.command()
@click.option("--timeout", default=2.0, show_default=True, help="Seconds to wait for workers.")
def inspect(timeout: float) -> None:
    """Summarise the queues (messages waiting) and the workers (tasks running)."""
    from tasks.worker import queue_depths, running_tasks

    settings = _settings()
    _services(settings)
    click.echo("queues (messages waiting):")
    for queue, depth in queue_depths(settings).items():
        click.echo(f"  {queue:<18} {depth}")
    workers = running_tasks(settings, timeout)
    click.echo(f"workers ({len(workers)} answered within {timeout:g} s):")
    for name, running in workers.items():
        click.echo(f"  {name:<40} {running} running")


@main.command("worker-health")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for answers.")
def worker_health(timeout: float) -> None:
    """Exit 0 if a worker on this host answers a ping (for container health checks)."""
    from tasks.worker import ping_local_workers

    settings = _settings()
    _services(settings)
    answered = ping_local_workers(settings, timeout)
    if not answered:
        raise click.ClickException(f"no worker on this host answered within {timeout:g} s")
    click.echo(f"ok: {', '.join(answered)}")


@main.command()
@click.option("--port", default=5555, show_default=True, help="Port of Flower's web UI.")
def flower(port: int) -> None:
    """Flower, the Celery web UI: workers, task names, arguments and states."""
    from tasks.worker import start_flower

    settings = _settings()
    _services(settings)
    start_flower(settings, port)


@main.command()
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


@main.group()
def keys() -> None:
    """Create, list and revoke API keys. Without AITASKS_DATABASE_URL they go to the
    embedded database `aitasks run` uses."""


@keys.command("create")
@click.option("--name", required=True, help="Who the key is for; keys with one name share tasks.")
def create_key(name: str) -> None:
    """Make a key and print it (once: only its digest is stored)."""
    from graphql_app import keys_cli
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
def list_keys() -> None:
    """Every key: id, first characters, name, when created, whether revoked."""
    from graphql_app import keys_cli

    with keys_cli.database(_settings()) as database_url:
        for key in keys_cli.all_keys(database_url):
            click.echo(keys_cli.describe(key))


@keys.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key, by the id or the first characters `keys list` shows. Running APIs
    refuse it within AITASKS_AUTH_CACHE_SECONDS."""
    from graphql_app import keys_cli

    with keys_cli.database(_settings()) as database_url:
        revoked = keys_cli.revoke(database_url, key_id)
    if not revoked:
        raise click.ClickException(f"No active key has the id or prefix {key_id!r}.")
    for key in revoked:
        click.echo(f"revoked: {keys_cli.describe(key)}")


if __name__ == "__main__":
    main()
