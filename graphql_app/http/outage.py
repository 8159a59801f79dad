"""A request that meets an outage outside any resolver (the API key's lookup, the rate
limiter, a download) is answered 503 with Retry-After and a GraphQL-shaped error that
names the server, never a bare 500. Errors inside resolvers are mapped the same way in
`schema.error_mapping`."""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persistence.outages import unavailable_dependency
from schema.error_mapping import UNAVAILABLE_CODE

logger = logging.getLogger(__name__)


def unavailable_body(dependency: str) -> bytes:
    message = (
        f"The service is unavailable: {dependency} cannot be reached right now. "
        "Please try again shortly."
    )
    error = {"message": message, "extensions": {"code": UNAVAILABLE_CODE, "dependency": dependency}}
    return orjson.dumps({"errors": [error]})


class OutageGuard:
    """ASGI middleware: an outage raised before the answer began becomes a 503."""

    def __init__(self, app: ASGIApp, retry_after_seconds: int) -> None:
        self.app = app
        self.retry_after = str(retry_after_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            dependency = unavailable_dependency(error)
            if dependency is None or started:
                raise
            logger.warning("answered 503: %s is unreachable (%r)", dependency, error)
            await self._unavailable(send, dependency)

    async def _unavailable(self, send: Send, dependency: str) -> None:
        body = unavailable_body(dependency)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", self.retry_after.encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
