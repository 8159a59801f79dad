"""uvicorn, with a stop that tells WebSocket clients to go elsewhere.

On SIGTERM or Ctrl-C uvicorn stops accepting connections and waits for the open ones to
finish, up to AITASKS_SHUTDOWN_TIMEOUT_SECONDS; a subscription never finishes by itself.
So each WebSocket is first closed with 1001 (going away): graphql-ws clients, Apollo's
among them, then reconnect, to another API process behind the load balancer.
"""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn
from fastapi import FastAPI

from graphql_app.settings import Settings
from graphql_app.ws_protocol import LeanWebSocket


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


def serve(app: FastAPI, settings: Settings) -> None:
    config = uvicorn.Config(
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
    )
    Server(config, app).run()
