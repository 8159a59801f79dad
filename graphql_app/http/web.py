"""The browser app (built from web/ into web_dist/): the dashboard at `/` with its client
routes, and GraphiQL at `GET /graphql` for browsers. Everything comes from this server.

Files under /assets/ are named by a hash of their content, so a browser may keep them
for good; the pages themselves are checked on every visit. ServeStatic sends the gzip
or Brotli copy the build made when the browser accepts it.
"""

from __future__ import annotations

from pathlib import Path

from servestatic import ServeStaticASGI
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

# Beside the package's modules (package data of graphql_app), where Vite writes it.
WEB_DIST = Path(__file__).parent.parent / "web_dist"
DASHBOARD = "index.html"
GRAPHIQL = "graphiql.html"
ASSETS_PREFIX = "/assets/"
# Seconds a browser may use a page without asking again: none, so a new build shows at
# the next visit. Hashed assets are immutable instead (a year, ServeStatic's default).
PAGE_MAX_AGE_SECONDS = 0
# Scripts and styles only from this server and never inline scripts. Styles may be
# inline: GraphiQL's editor (Monaco) writes its own <style> elements. Its workers are
# files here; connect-src 'self' includes this host's ws:// and wss://.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
NOT_BUILT = (
    "The web app is not built. Install Node.js 20 or newer and run `make run` (or "
    "`npm ci && npm run build` in web/); the API at /graphql works without it."
)


def _security_headers(headers: MutableHeaders | Headers | dict[str, str], *_: str) -> None:
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY  # type: ignore[index]
    headers["X-Content-Type-Options"] = "nosniff"  # type: ignore[index]
    headers["Referrer-Policy"] = "same-origin"  # type: ignore[index]


class WebApp:
    """The catch-all GET route: a built file if there is one, else the dashboard's page
    for a client route (`/tasks/ID`), else 404 for a missing asset."""

    def __init__(self, root: Path = WEB_DIST) -> None:
        self.root = root
        self._files = ServeStaticASGI(
            self._client_route,
            root=str(root) if root.is_dir() else None,
            max_age=PAGE_MAX_AGE_SECONDS,
            immutable_file_test=rf"^{ASSETS_PREFIX}",
            add_headers_function=_security_headers,
            index_file=True,
            allow_all_origins=False,
        )

    @property
    def built(self) -> bool:
        return (self.root / DASHBOARD).is_file()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._files(scope, receive, send)

    async def _client_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if scope["path"].startswith(ASSETS_PREFIX) or "." in scope["path"].rsplit("/", 1)[-1]:
            response = PlainTextResponse("Not found.", status_code=404)
        elif not self.built:
            response = PlainTextResponse(NOT_BUILT, status_code=503)
        else:
            # The dashboard's page under any path it routes itself: same bytes as `/`.
            await self._files({**scope, "path": "/"}, receive, send)
            return
        await response(scope, receive, send)

    def graphiql(self) -> Response:
        """GraphiQL's page, for `GET /graphql` from a browser."""
        page = self.root / GRAPHIQL
        if not page.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=503)
        response = HTMLResponse(page.read_bytes(), headers={"Cache-Control": "no-cache"})
        _security_headers(response.headers)
        return response
