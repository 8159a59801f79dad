"""Browser logins: the `/login` page trades an API key for a session, whose id (never
the key) goes in an HttpOnly cookie; `/logout` ends it.

A session lives in Redis under the digest of its id, with a TTL, and holds the digest
of the key it was opened with, so a revoked key ends its sessions at once. A request
authenticated by the cookie must also prove it comes from this site's own pages (CSRF):
it carries the preflight header or a JSON body, which a form on another site cannot
send, and a WebSocket's handshake comes from this site's origin.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from graphql_app.auth import authenticate, bearer, rate_limited, unauthenticated
from persistence.settings import Settings
from schema.context import Services
from tasks.services.callers import Caller, digest

SESSION_COOKIE = "aitasks_session"
REDIS_PREFIX = "aitasks:session:"
# 32 random bytes: an id nobody can guess, so a plain digest is a safe name to store.
SESSION_ID_BYTES = 32
# Headers only a script on a page allowed by CORS can set (see graphql_app.http.app).
PREFLIGHT_HEADERS = ("graphql-require-preflight", "apollo-require-preflight")
CSRF_MESSAGE = (
    "A request authenticated by the login cookie needs the header "
    "`GraphQL-Require-Preflight: 1` or a JSON body, so that no other site can send it."
)
# Where a login goes when it names no page of its own to return to.
AFTER_LOGIN = "/"


class Sessions:
    """Sessions in Redis, each for `ttl_seconds` from its login."""

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self.ttl_seconds = ttl_seconds

    async def start(self, key: str) -> str:
        """Open a session for a (checked) API key; its id, for the cookie."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        await self._redis.set(_name(session_id), digest(key), ex=self.ttl_seconds)
        return session_id

    async def key_digest(self, session_id: str) -> str | None:
        value = await self._redis.get(_name(session_id))
        return value.decode() if isinstance(value, bytes) else value

    async def end(self, session_id: str) -> None:
        await self._redis.delete(_name(session_id))


def _name(session_id: str) -> str:
    # Stored under a digest: a dump of Redis holds no id that would work as a cookie.
    return REDIS_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


@asynccontextmanager
async def open_sessions(settings: Settings) -> AsyncIterator[Sessions]:
    _, redis_url = settings.require_services()
    redis = Redis.from_url(redis_url, client_name="aitasks-api-sessions")
    try:
        yield Sessions(redis, settings.session_ttl_seconds)
    finally:
        await redis.aclose()


def session_id_of(headers: Mapping[str, str]) -> str | None:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = cookies.get(SESSION_COOKIE)
    return morsel.value if morsel else None


def from_this_site(headers: Mapping[str, str]) -> bool:
    """A script on one of this site's pages sent it: a preflight header, or a JSON body
    (both make a browser ask this server first before another site may send them)."""
    if any(headers.get(name) for name in PREFLIGHT_HEADERS):
        return True
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json"


def same_origin(headers: Mapping[str, str]) -> bool:
    """The browser says the request comes from a page of this host (or says nothing,
    as clients that are not browsers do)."""
    origin = headers.get("origin")
    return origin is None or urlsplit(origin).netloc == headers.get("host")


async def session_caller(services: Services, sessions: Sessions, session_id: str) -> Caller | None:
    """Who a session speaks for; None for an ended or expired one, or a revoked key."""
    return await services.keys.caller_of_digest(await sessions.key_digest(session_id))


async def caller_of_headers(
    services: Services, sessions: Sessions, headers: Mapping[str, str], *, state_changing: bool
) -> Caller | Response:
    """The caller of an HTTP request by its `Authorization` header, else its session
    cookie; or the response refusing it (401, or 403 for a cookie request that may come
    from another site). `state_changing`: the request may change something (a GraphQL
    POST), and a cookie alone is not enough for it."""
    authorization = headers.get("authorization")
    session_id = session_id_of(headers)
    if authorization or session_id is None or not services.settings.auth:
        caller = await authenticate(services, bearer(authorization) if authorization else None)
        return caller if caller is not None else unauthenticated()
    if state_changing and not from_this_site(headers):
        return csrf_refused()
    caller = await session_caller(services, sessions, session_id)
    return caller if caller is not None else unauthenticated()


async def admit_request(
    services: Services, sessions: Sessions, headers: Mapping[str, str]
) -> Caller | Response:
    """As `graphql_app.auth.admit`, with the session cookie as a way in: the caller of
    a GraphQL request, or the response refusing it (401, 403, 429)."""
    caller = await caller_of_headers(services, sessions, headers, state_changing=True)
    if isinstance(caller, Response):
        return caller
    wait = await services.limiter.retry_after(
        caller.name, "requests", services.settings.requests_per_minute
    )
    if wait is not None:
        return rate_limited(wait, "requests", "AITASKS_REQUESTS_PER_MINUTE")
    return caller


def csrf_refused() -> Response:
    error = {"message": CSRF_MESSAGE, "extensions": {"code": "CSRF_REFUSED"}}
    return JSONResponse({"errors": [error]}, status_code=403)


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aitasks: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">
<h1>aitasks</h1>
<p>Paste an API key to use the dashboard and GraphiQL in this browser. The key is checked
once; this browser keeps only a session, which <b>Log out</b> ends.</p>
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<input name="key" type="password" autocomplete="off" placeholder="ait_..." required
 aria-label="API key" style="width:100%;padding:.5rem;margin:.5rem 0;font-family:monospace">
<button type="submit">Log in</button></form>
<p role="alert">{message}</p></body></html>
"""


def _local_path(value: object) -> str:
    """A path on this site to return to after login; anything else (another site's
    URL, `//host`) goes to the dashboard."""
    text = str(value or "")
    parts = urlsplit(text)
    if not text.startswith("/") or text.startswith("//") or parts.scheme or parts.netloc:
        return AFTER_LOGIN
    return text


def _page(message: str, next_path: str = AFTER_LOGIN, status_code: int = 200) -> HTMLResponse:
    body = LOGIN_PAGE.replace("{next}", html.escape(next_path)).replace(
        "{message}", html.escape(message)
    )
    return HTMLResponse(body, status_code)


async def login_page(request: Request) -> Response:
    return _page("", _local_path(request.query_params.get("next")))


async def login(request: Request) -> Response:
    """Check the key from the login form and open a session for it."""
    services: Services = request.app.state.services
    sessions: Sessions = request.app.state.sessions
    form: Any = await request.form()
    key = str(form.get("key", "")).strip()
    next_path = _local_path(form.get("next"))
    # A login posted from another site would sign this browser in with someone else's key.
    if not same_origin(request.headers):
        return _page("Log in from this site's own page.", next_path, 403)
    if await services.keys.caller(key) is None:
        return _page("That key is unknown or revoked.", next_path, 401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        await sessions.start(key),
        max_age=sessions.ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    """End this browser's session. Only from this site's pages: another site must not
    sign a person out either."""
    if not from_this_site(request.headers) or not same_origin(request.headers):
        return csrf_refused()
    sessions: Sessions = request.app.state.sessions
    session_id = session_id_of(request.headers)
    if session_id is not None:
        await sessions.end(session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


async def socket_caller(
    services: Services,
    sessions: Sessions,
    key: str | None,
    headers: Mapping[str, str],
) -> tuple[Caller | None, str | None]:
    """The caller of a WebSocket and the digest of the key it speaks with (to check it
    again later): the key in `connection_init`, else the handshake's `Authorization`,
    else its login cookie, which counts only from this site's own pages (a page
    elsewhere may open a socket here, and the browser sends the cookie)."""
    authorization = headers.get("authorization")
    if key is None and authorization:
        key = bearer(authorization)
    session_id = session_id_of(headers)
    if key is not None or session_id is None or not services.settings.auth:
        return await authenticate(services, key), digest(key) if key else None
    if headers.get("origin") is None or not same_origin(headers):
        return None, None
    key_hash = await sessions.key_digest(session_id)
    return await services.keys.caller_of_digest(key_hash), key_hash
