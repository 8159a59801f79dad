"""Callers prove who they are with an API key: `Authorization: Bearer KEY` over HTTP, the
`connection_init` payload over a WebSocket, or, for GraphiQL in a browser, a cookie set
by the `/login` page."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from schema.context import Services
from tasks.callers import DEVELOPMENT_CALLER, Caller

COOKIE_NAME = "aitasks_key"
# A browser session's key is kept for a working day; log in again after that.
COOKIE_MAX_AGE_SECONDS = 12 * 3600
# Keys a graphql-ws client may put in its connectionParams, as Apollo users commonly do.
CONNECTION_PARAM_NAMES = ("authorization", "Authorization", "apiKey", "api_key")
UNAUTHENTICATED_MESSAGE = (
    "An API key is needed: send `Authorization: Bearer <key>` (create one with "
    "`aitasks keys create --name NAME`), or log in at /login to use GraphiQL."
)


def bearer(value: object) -> str | None:
    """The key in an `Authorization` value ("Bearer KEY"), or a bare key."""
    if not isinstance(value, str):
        return None
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value.strip()


def key_of_request(headers: Mapping[str, str]) -> str | None:
    """The key an HTTP request or WebSocket handshake carries, header first."""
    authorization = headers.get("authorization")
    if authorization:
        return bearer(authorization)
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except Exception:
        return None
    morsel = cookies.get(COOKIE_NAME)
    return morsel.value if morsel else None


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


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aitasks: log in</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}
input{width:100%;padding:.5rem;margin:.5rem 0;font-family:monospace}</style></head>
<body><h1>aitasks</h1>
<p>Paste an API key to use GraphiQL in this browser. The key is kept in a cookie that
only this site's pages can send.</p>
<form method="post" action="/login">
<input name="key" type="password" autocomplete="off" placeholder="ait_..." required>
<button type="submit">Log in</button></form>
<p>{message}</p></body></html>
"""


def _page(message: str, status_code: int = 200) -> HTMLResponse:
    # replace, not format: the page's CSS has braces of its own.
    return HTMLResponse(LOGIN_PAGE.replace("{message}", html.escape(message)), status_code)


def _same_origin(request: Request) -> bool:
    # A login posted from another site would sign this browser in with someone else's key.
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def login_page(request: Request) -> Response:
    return _page("")


async def login(request: Request) -> Response:
    services: Services = request.app.state.services
    form: Any = await request.form()
    key = str(form.get("key", "")).strip()
    if not _same_origin(request):
        return _page("Log in from this site's own page.", 403)
    if await services.keys.caller(key) is None:
        return _page("That key is unknown or revoked.", 401)
    response = RedirectResponse("/graphql", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        key,
        max_age=COOKIE_MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
