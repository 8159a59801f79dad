"""One log line per HTTP request, and the request id every line written while serving it
carries (the format itself, JSON or readable, is tasks/logs.py's, shared by every
process). Prompts, results and API keys are never logged at INFO.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks.request_info import CURRENT_REQUEST, RequestInfo

# A request id a client sends is kept only if it looks like one.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REQUEST_ID_HEADER = b"x-request-id"

logger = logging.getLogger("aitasks.requests")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            given = value.decode("latin-1")
            if REQUEST_ID.match(given):
                return given
    return uuid.uuid4().hex


class _ResponseWithId:
    """An HTTP response's `send`, adding the request id to the head and noting the
    status."""

    __slots__ = ("_send", "request_id", "status")

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self.request_id = request_id
        self.status = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = [*message.get("headers", []), (REQUEST_ID_HEADER, self.request_id.encode())]
            message = {**message, "headers": headers}
        await self._send(message)


class RequestLog:
    """One line per HTTP request (method, path, status, duration, request id, and for
    GraphQL the operation), and the request id echoed in `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = RequestInfo(_request_id(scope))
        token = CURRENT_REQUEST.set(request)
        started = time.perf_counter()
        # A WebSocket's sends go straight through: it has no response head to mark, and
        # it is open for hours, every update of every subscription sent through here.
        response = _ResponseWithId(send, request.request_id) if scope["type"] == "http" else None
        try:
            await self.app(scope, receive, send if response is None else response.send)
        finally:
            CURRENT_REQUEST.reset(token)
            status = 0 if response is None else response.status
            self._log(scope, request, status, time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, request: RequestInfo, status: int, seconds: float) -> None:
        method = scope.get("method", "WEBSOCKET")
        details: dict[str, Any] = {
            "request_id": request.request_id,
            "method": method,
            "path": scope.get("path"),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        if request.operation:
            details["operation"] = request.operation
        if request.caller:
            details["caller"] = request.caller
        details.update(request.extra)
        logger.info("%s %s %s", method, scope.get("path"), status or "-", extra=details)
