"""Callers prove who they are with an API key: `Authorization: Bearer KEY` over HTTP, the
`connection_init` payload over a WebSocket. Browsers log in once and carry a session
cookie instead (graphql_app/http/sessions.py)."""

from __future__ import annotations

import math

from starlette.responses import JSONResponse, Response

from schema.context import Services
from tasks.services.callers import DEVELOPMENT_CALLER, Caller

# Keys a graphql-ws client may put in its connectionParams, as Apollo users commonly do.
CONNECTION_PARAM_NAMES = ("authorization", "Authorization", "apiKey", "api_key")
UNAUTHENTICATED_MESSAGE = (
    "An API key is needed: send `Authorization: Bearer <key>` (create one with "
    "`aitasks keys create --name NAME`), or log in at /login in a browser."
)


def bearer(value: object) -> str | None:
    """The key in an `Authorization` value ("Bearer KEY"), or a bare key."""
    if not isinstance(value, str):
        return None
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value.strip()


def key_of_connection(params: object) -> str | None:
    if not isinstance(params, dict):
        return None
    for name in CONNECTION_PARAM_NAMES:
        if name in params:
            return bearer(params[name])
    headers = params.get("headers")
    if isinstance(headers, dict):
        return key_of_connection(headers)
    return None


async def authenticate(services: Services, key: str | None) -> Caller | None:
    if not services.settings.auth:
        return Caller(DEVELOPMENT_CALLER)
    return await services.keys.caller(key)


def unauthenticated() -> Response:
    body = {
        "errors": [{"message": UNAUTHENTICATED_MESSAGE, "extensions": {"code": "UNAUTHENTICATED"}}]
    }
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def rate_limited(wait_seconds: float, what: str, setting: str) -> Response:
    seconds = max(1, math.ceil(wait_seconds))
    error = {
        "message": f"Too many {what} from this API key this minute ({setting}); try again "
        f"in {seconds} s.",
        "extensions": {"code": "RATE_LIMITED", "retryAfterSeconds": seconds},
    }
    return JSONResponse({"errors": [error]}, status_code=429, headers={"Retry-After": str(seconds)})


async def admit(services: Services, key: str | None) -> Caller | Response:
    """The caller of an HTTP request, or the response refusing it: 401 without a valid
    key, 429 over the caller's request rate."""
    caller = await authenticate(services, key)
    if caller is None:
        return unauthenticated()
    wait = await services.limiter.retry_after(
        caller.name, "requests", services.settings.requests_per_minute
    )
    if wait is not None:
        return rate_limited(wait, "requests", "AITASKS_REQUESTS_PER_MINUTE")
    return caller
