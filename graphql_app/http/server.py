"""uvicorn, in one process or several, with a stop that tells WebSocket clients to go
elsewhere.

On SIGTERM or Ctrl-C uvicorn stops accepting connections and waits for the open ones to
finish, up to AITASKS_SHUTDOWN_TIMEOUT_SECONDS; a subscription never finishes by itself.
So each WebSocket is first closed with 1001 (going away): graphql-ws clients, Apollo's
among them, then reconnect, to another API process behind the load balancer.

With AITASKS_API_WORKERS above 1, uvicorn's own supervisor binds the port once and
starts that many processes on it, restarting any that dies. Each builds the app from
the environment (`create_app_from_environment`), so each runs its own lifespan: its own
PostgreSQL pools and its own Redis subscription for task changes. The lean WebSocket
protocol closes its sockets with 1001 by itself; uvicorn's own protocol, in a process
uvicorn's supervisor started, closes them with 1012 (service restart), on which
graphql-ws clients reconnect as well.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from graphql_app.ws.protocol import LeanWebSocket
from persistence.settings import Settings, get_settings

# What each process of a multi-process API imports to build its app.
APP_FACTORY = "graphql_app.http.server:create_app_from_environment"


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._closing: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._closing is None:
            loop = asyncio.get_event_loop()
            self._closing = loop.create_task(self._app.state.graphql.going_away())
        super().handle_exit(sig, frame)


def create_app_from_environment() -> FastAPI:
    """The app of one process of several, from the same settings as its parent's.

    A process uvicorn's supervisor started begins afresh (multiprocessing's spawn): it
    ran no `aitasks` command, so logging is set up here as the command sets it up;
    otherwise a library's handler (rich's) formats every request line, at three times
    the API's CPU per request."""
    from graphql_app.http.app import create_app
    from tasks import logs

    settings = get_settings()
    logs.configure(settings.json_logs)
    return create_app(settings)


def _config(app: FastAPI | str, settings: Settings, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws=LeanWebSocket if settings.ws_protocol == "lean" else "auto",
        ws_max_size=settings.ws_message_max_bytes,
        ws_max_queue=settings.ws_receive_queue_max,
        ws_ping_interval=settings.ws_ping_interval_seconds,
        ws_ping_timeout=settings.ws_ping_timeout_seconds,
        # Compression costs tens of kilobytes per socket; updates are small anyway.
        ws_per_message_deflate=False,
        log_level="info",
        # RequestLog writes one line per request, with the request id and operation.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        **extra,
    )


def serve(settings: Settings, workers: int | None = None) -> None:
    """Serve the API on AITASKS_HOST:AITASKS_PORT in `workers` processes (default:
    AITASKS_API_WORKERS, else one per core in production and one in development)."""
    workers = workers or settings.effective_api_workers
    if workers == 1:
        from graphql_app.http.app import create_app

        app = create_app(settings)
        Server(_config(app, settings), app).run()
        return
    config = _config(APP_FACTORY, settings, factory=True, workers=workers)
    Multiprocess(config, sockets=[config.bind_socket()]).run()
