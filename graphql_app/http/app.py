"""The ASGI app: FastAPI for plain routes, Strawberry's ASGI app for GraphQL."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from fastapi import FastAPI
from prometheus_client import Gauge
from redis.asyncio import Redis
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType
from websockets.frames import CloseCode

from graphql_app.auth import key_of_connection
from graphql_app.http.artifacts import download_artifact
from graphql_app.http.body_limit import BodySizeLimit
from graphql_app.http.health import healthz, metrics, readyz
from graphql_app.http.outage import OutageGuard
from graphql_app.http.request_log import RequestLog
from graphql_app.http.sessions import (
    admit_request,
    login,
    login_page,
    logout,
    open_sessions,
    socket_caller,
)
from graphql_app.http.web import WebApp
from graphql_app.mcp.server import MCP_PATH, McpEndpoint, build_mcp_server, mount_http
from graphql_app.ws.graphql_ws import SharedSubscriptions, TransportHandler
from graphql_app.ws.messages import FORBIDDEN, KEY_REVOKED_REASON, SOCKET_KEY_STATE
from graphql_app.ws.protocol import SHUTDOWN_REASON
from persistence.creation import TaskInserts
from persistence.database import create_engine, create_pool, create_sessionmaker
from persistence.settings import Settings, get_settings
from schema import QueryLimits, build_schema
from schema.context import Context, Services
from schema.prepared import PreparedOperations
from tasks.event_hub import TaskEventHub
from tasks.request_info import CURRENT_REQUEST
from tasks.services.callers import DEVELOPMENT_CALLER, KeyChecker
from tasks.services.dispatch import Dispatcher
from tasks.services.rate_limits import RateLimiter

logger = logging.getLogger(__name__)

APPLICATION_NAME = "aitasks-api"
GRAPHQL_PATH = "/graphql"


# A multipart request is one a browser form on any site may send without asking: it is
# served only with one of these headers, which no form can set and which make a browser
# ask this server first (CORS preflight).
PREFLIGHT_HEADERS = ("graphql-require-preflight", "apollo-require-preflight")
MULTIPART_REFUSED = (
    "A multipart (file upload) request needs the header `GraphQL-Require-Preflight: 1` "
    "(or `Apollo-Require-Preflight: true`), so that a form on another site cannot send one."
)


NESTED_TOO_DEEP = "The request is nested too deeply to be read."
BODY_UNREADABLE = (
    "The request body must be a JSON object with `query` (a string) and optionally "
    "`variables` and `extensions` (objects) and `operationName` (a string)."
)
MAP_UNREADABLE = (
    "The multipart `map` must be an object whose values are lists of paths, each to a "
    "null in the operations' variables (such as `variables.input.files.0.upload`)."
)

# The keys of a JSON request that the prepared path serves; any other (`extensions`)
# goes to Strawberry.
PLAIN_REQUEST_KEYS = frozenset({"query", "variables", "operationName"})

# How often open WebSockets have their keys checked again, at the most: every
# AITASKS_AUTH_CACHE_SECONDS, so a revoked key's sockets close within that long, but not
# more often than this when the cache is off (one query per pass, for every key open).
KEY_RECHECK_MIN_SECONDS = 1.0

WEBSOCKETS = Gauge("aitasks_websockets_open", "WebSockets open and past connection_init.")

# Where the HTTP gate leaves the caller for the operation's context, and where a
# WebSocket's connection records whose socket it is.
CALLER_STATE = "aitasks_caller"
SOCKET_OWNER_STATE = "aitasks_socket_owner"


def _asks_for_graphiql(scope: Scope) -> bool:
    """A browser's GET for the GraphiQL page itself, served to anyone: the operations it
    then sends carry the login cookie. Only a bare GET, with no query string at all: a
    parameter, however spelled (`%71uery=` decodes to `query=`), may carry an operation."""
    if scope["method"] != "GET" or scope.get("query_string", b""):
        return False
    accept = Headers(scope=scope).get("accept", "")
    return "text/html" in accept


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return parse_content_type(value.decode("latin-1"))[0] == "application/json"
    return False


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A `receive` that gives the body already read once, then waits as the server's would
    (for the client to disconnect)."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


def _single_operation(data: object) -> tuple[str, dict[str, Any] | None, str | None] | None:
    """The query, variables and operation name of a plain single-operation request;
    None for anything else (a batch, extensions, a malformed body)."""
    if not isinstance(data, dict) or not data.keys() <= PLAIN_REQUEST_KEYS:
        return None
    query, variables = data.get("query"), data.get("variables")
    operation_name = data.get("operationName")
    if not isinstance(query, str) or not isinstance(variables, dict | None):
        return None
    if not isinstance(operation_name, str | None):
        return None
    return query, variables, operation_name


# The GraphQL-over-HTTP media type: with it, a request that never reached execution
# (a document that does not parse or validate, variables that do not coerce) answers 400
# without `data`; with plain application/json, such an answer stays 200.
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def _quality(media_range: str) -> tuple[str, float]:
    media_type, _, parameters = media_range.partition(";")
    quality = 1.0
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    return media_type.strip().lower(), quality


def _prefers_graphql_response(accept: str) -> bool:
    """Whether the Accept header asks for GRAPHQL_RESPONSE_JSON at least as much as for
    application/json. A missing or `*/*` Accept keeps application/json, which every
    client reads."""
    qualities = dict(_quality(media_range) for media_range in accept.split(","))
    wanted = qualities.get(GRAPHQL_RESPONSE_JSON, 0.0)
    return wanted > 0 and wanted >= qualities.get("application/json", 0.0)


def _never_executed(response: dict[str, Any]) -> bool:
    """A response whose errors all came before execution: every error raised while a
    field ran has a `path`, those of parsing, validation and variables have none."""
    errors = response.get("errors") or []
    return response.get("data") is None and bool(errors) and not any("path" in e for e in errors)


class _SubResponse(Response):
    """Strawberry's per-request response, noting the media type the request asked for."""

    graphql_response = False


def _request_error(error: HTTPException, accept: str) -> Response:
    """A request GraphQL could not run (no operation by that name, a method or media type
    not served, an unreadable body), answered as GraphQL errors in JSON with its status,
    not Strawberry's plain text: GraphiQL, Apollo and gql all read `errors`."""
    body = {"errors": [{"message": error.reason, "extensions": {"code": "BAD_REQUEST"}}]}
    media_type = GRAPHQL_RESPONSE_JSON if _prefers_graphql_response(accept) else "application/json"
    return Response(orjson.dumps(body), status_code=error.status_code, media_type=media_type)


def _too_large(size: int, limit: int) -> dict[str, Any]:
    """The answer sent instead of one over AITASKS_RESPONSE_MAX_BYTES."""
    error = {
        "message": f"The answer would be {size:,} bytes, over the limit of {limit:,} "
        "(AITASKS_RESPONSE_MAX_BYTES): ask for fewer fields, aliases or tasks per page.",
        "extensions": {"code": "RESPONSE_TOO_LARGE"},
    }
    return {"data": None, "errors": [error]}


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI app, mounted directly: it serves well above FastAPI's router."""

    graphql_transport_ws_handler_class = TransportHandler

    def __init__(self, settings: Settings) -> None:
        limits = QueryLimits(
            max_depth=settings.query_max_depth,
            max_tokens=settings.query_max_tokens,
            max_aliases=settings.query_max_aliases,
            max_batch=settings.batch_max_operations,
            introspection=settings.introspection_enabled,
        )
        schema = build_schema(limits)
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(
                seconds=settings.ws_connection_init_timeout_seconds
            ),
            max_subscriptions_per_connection=settings.ws_subscriptions_max,
            multipart_uploads_enabled=True,
        )
        self._prepared = PreparedOperations(schema, limits)
        self.web = WebApp()
        self.shared_subscriptions = SharedSubscriptions(schema, limits)
        self._max_sockets = settings.ws_connections_max_per_key
        self._max_response = settings.response_max_bytes
        # Open WebSockets per caller on this process.
        self._sockets: Counter[str] = Counter()
        # How to reach each open WebSocket, to tell it the server is going away.
        self._open: dict[int, Send] = {}
        # The key each open, acknowledged WebSocket connected with, checked again
        # periodically (`watch_keys`).
        self._socket_keys: dict[int, str | None] = {}

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        content_type, _ = parse_content_type(request.content_type or "")
        if content_type == "multipart/form-data" and not any(
            request.headers.get(name) for name in PREFLIGHT_HEADERS
        ):
            raise HTTPException(400, MULTIPART_REFUSED)
        try:
            return await super().parse_http_body(request)
        except HTTPException:
            raise
        except RecursionError:
            raise HTTPException(400, NESTED_TOO_DEEP) from None
        except Exception:
            # Strawberry reads the body as it should be, without checking: a `null` body
            # or one that is not an object, a multipart `map` whose path leads one past a
            # list's end or into a string... A bad request, not a 500; what Python said
            # goes to the log, never to the client.
            logger.info("an unreadable GraphQL request", exc_info=True)
            multipart = content_type == "multipart/form-data"
            raise HTTPException(400, MAP_UNREADABLE if multipart else BODY_UNREADABLE) from None

    def encode_json(self, data: object) -> str:
        # orjson writes a response several times faster than the standard library. Text,
        # not bytes: Strawberry sends bytes over a WebSocket as binary frames, which
        # graphql-ws clients do not read. Requests are still read with `json`, which
        # lets a lone surrogate through to the input checks, so the client hears which
        # field is wrong.
        encoded = orjson.dumps(data)
        if len(encoded) > self._max_response:
            refusal = _too_large(len(encoded), self._max_response)
            if isinstance(data, dict) and "payload" in data:  # a WebSocket's `next`
                refusal = {**data, "payload": refusal}
            return orjson.dumps(refusal).decode()
        return encoded.decode()

    async def going_away(self) -> None:
        """Close every WebSocket with 1001 (going away), so clients reconnect to
        another process while this one stops."""
        for send in list(self._open.values()):
            with contextlib.suppress(Exception):
                await send(
                    {
                        "type": "websocket.close",
                        "code": CloseCode.GOING_AWAY,
                        "reason": SHUTDOWN_REASON,
                    }
                )

    async def watch_keys(self, services: Services) -> None:
        """Close with 4403 every open WebSocket whose key has been revoked: a socket
        that only listens sends nothing that would have its key checked again."""
        interval = max(services.settings.auth_cache_seconds, KEY_RECHECK_MIN_SECONDS)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._close_revoked(services)
            except Exception:
                logger.exception("checking the keys of open WebSockets failed; will retry")

    async def _close_revoked(self, services: Services) -> None:
        keys = set(self._socket_keys.values())
        if not keys:
            return
        valid = await services.keys.still_valid(keys)
        for socket_id, key in list(self._socket_keys.items()):
            send = self._open.get(socket_id)
            if key in valid or send is None:
                continue
            self._socket_keys.pop(socket_id, None)
            logger.info("closing a WebSocket whose API key was revoked")
            with contextlib.suppress(Exception):
                await send(
                    {"type": "websocket.close", "code": FORBIDDEN, "reason": KEY_REVOKED_REASON}
                )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self._open[id(scope)] = send
        if scope["type"] == "http" and not _asks_for_graphiql(scope):
            state = scope["app"].state
            services: Services = state.services
            caller = await admit_request(services, state.sessions, Headers(scope=scope))
            if isinstance(caller, Response):
                await caller(scope, receive, send)
                return
            scope.setdefault("state", {})[CALLER_STATE] = caller
            if (request := CURRENT_REQUEST.get()) is not None:
                request.caller = caller.name
            if scope["method"] == "POST" and _is_json(scope):
                body = await _read_body(receive)
                receive = _replay(body)
                if await self._serve_prepared(scope, body, receive, send):
                    return
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._open.pop(id(scope), None)
            self._socket_keys.pop(id(scope), None)
            owner = scope.get("state", {}).pop(SOCKET_OWNER_STATE, None)
            if owner is not None:
                WEBSOCKETS.dec()
                self._sockets[owner] -= 1
                if self._sockets[owner] <= 0:
                    del self._sockets[owner]

    async def _serve_prepared(
        self, scope: Scope, body: bytes, receive: Receive, send: Send
    ) -> bool:
        """Answer a JSON request for a prepared operation (see schema.prepared); False,
        having sent nothing, when the request is one for Strawberry to answer."""
        try:
            # The standard library's parser, as Strawberry's: orjson reads an integer past
            # 64 bits as a float and refuses a lone surrogate, which the input checks
            # would rather name.
            data = json.loads(body)
        except (ValueError, RecursionError):
            return False  # Strawberry reads it again and answers 400
        request_data = _single_operation(data)
        if request_data is None:
            return False
        query, variables, operation_name = request_data
        prepared = self._prepared.get(query, operation_name)
        if prepared is None:
            return False
        request = Request(scope, receive)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, sub_response)
        result = await self._prepared.execute(prepared, variables, context)
        await self.create_response(result, sub_response)(scope, receive, send)
        return True

    async def run(  # type: ignore[override]
        self,
        request: Request | WebSocket,
        context: Context | UnsetType = UNSET,
        root_value: UnsetType | None = UNSET,
    ) -> Response | WebSocket:
        try:
            return await super().run(request, context, root_value)  # type: ignore[arg-type]
        except HTTPException as error:
            if isinstance(request, WebSocket):
                raise
            return _request_error(error, request.headers.get("accept", ""))

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = _SubResponse()
        sub_response.status_code = None  # type: ignore[assignment]
        del sub_response.headers["content-length"]
        sub_response.graphql_response = _prefers_graphql_response(request.headers.get("accept", ""))
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        if not getattr(sub_response, "graphql_response", False):
            return super().create_response(response_data, sub_response)
        if isinstance(response_data, dict) and _never_executed(cast(dict[str, Any], response_data)):
            response_data = cast(
                GraphQLHTTPResponse, {k: v for k, v in response_data.items() if k != "data"}
            )
            if sub_response.status_code is None:
                sub_response.status_code = 400
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        return response

    async def render_graphql_ide(self, request: Request) -> Response:
        # GraphiQL from the web app's own build, not Strawberry's page, which loads it
        # from a CDN (and so never loads offline).
        return self.web.graphiql()

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services: Services = request.app.state.services
        caller = getattr(request.state, CALLER_STATE, None)
        return Context(services=services, request=request, response=response, caller=caller)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Check the key in `connection_init` (or the handshake's login cookie, for the
        browser app); a missing or bad one closes the socket with 4403 before any
        subscription."""
        context.caller, key_hash = await socket_caller(
            context.services,
            context.request.app.state.sessions,
            key_of_connection(context.connection_params),
            context.request.headers,
        )
        if context.caller is None:
            raise ConnectionRejectionError
        name = context.caller.name
        if self._max_sockets and self._sockets[name] >= self._max_sockets:
            logger.info("refused a WebSocket: %r holds %d already", name, self._sockets[name])
            raise ConnectionRejectionError
        self._sockets[name] += 1
        WEBSOCKETS.inc()
        state = context.request.scope.setdefault("state", {})
        state[SOCKET_OWNER_STATE] = name
        state[SOCKET_KEY_STATE] = key_hash
        if context.settings.auth:
            self._socket_keys[id(context.request.scope)] = key_hash
        return UNSET


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """The connections and helpers an API process (or `aitasks mcp`) shares, closed on
    exit."""
    database_url, redis_url = settings.require_services()
    engine = create_engine(database_url, APPLICATION_NAME, pool_size=settings.db_pool_size)
    sessionmaker = create_sessionmaker(engine)
    # Two clients: the hub's subscription waits on its socket for as long as it is quiet,
    # while a command that takes longer than the enqueue timeout has failed.
    subscriber = Redis.from_url(redis_url, client_name=f"{APPLICATION_NAME}-events")
    timeout = settings.enqueue_timeout_seconds
    commands = Redis.from_url(
        redis_url,
        client_name=APPLICATION_NAME,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    hub = TaskEventHub(
        subscriber,
        sessionmaker,
        max_buffered=settings.subscriber_queue_size,
        audit_seconds=settings.subscription_resync_seconds,
        poll_seconds=settings.subscription_poll_seconds,
    )
    await hub.start()
    pool = await create_pool(engine, APPLICATION_NAME, settings.db_pool_size)
    try:
        yield Services(
            settings=settings,
            sessionmaker=sessionmaker,
            pool=pool,
            inserts=TaskInserts(
                pool,
                max_rows=settings.create_group_max_rows,
                max_in_flight=settings.create_groups_in_flight,
            ),
            hub=hub,
            dispatcher=Dispatcher(
                commands,
                max_messages=settings.create_group_max_rows,
                max_in_flight=settings.create_groups_in_flight,
            ),
            keys=KeyChecker(
                sessionmaker,
                settings.auth_cache_seconds,
                lookups_in_flight=settings.auth_lookups_in_flight,
                max_keys=settings.auth_cache_max_keys,
            ),
            limiter=RateLimiter(commands),
        )
    finally:
        await hub.close()
        await pool.close()
        await subscriber.aclose()
        await commands.aclose()
        await engine.dispose()


# A full pass waits for 100 passes over the middle generation instead of 10. A full pass
# walks every live object, ~200 per open WebSocket with its subscription: with 1,000 open
# it stops every subscriber for hundreds of milliseconds. Updates make no cyclic garbage
# (gc.DEBUG_SAVEALL finds none), so what full passes free comes only from sockets
# closing, which rarer passes still collect. The young passes keep their 700 / 10 so that
# each stays short: a larger youngest threshold makes one pass walk a whole burst of new
# subscriptions.
GC_THRESHOLDS = (700, 10, 100)


def _freeze_startup_objects() -> None:
    """Keep everything built at start-up (modules, schema, pools) out of the garbage
    collector's full passes, which would otherwise walk all of it each time: frozen, a
    full pass does about a tenth of the work. Then make full passes rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Api(FastAPI):
    """FastAPI, with GraphQL's WebSockets and POSTs handed to Strawberry's app past the
    middleware and the router.

    A WebSocket is a request that lasts hours, and each middleware and the router keep
    a coroutine frame for it all that time, some an object or an exit stack too (a
    good part of what an idle socket holds), and every update sent would go through
    each one's `send` wrapper. A POST is the API's hot
    path, and each layer costs it a little. What the stack does for them is kept in
    `graphql_lane` (RequestLog and BodySizeLimit; a WebSocket, which has no body, skips
    the latter); only with OpenTelemetry on, which traces in the stack, is the stack
    used, as for any request.
    """

    graphql_lane: ASGIApp | None = None
    websocket_lane: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self._lane(scope)
        if lane is not None:
            scope["app"] = self
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _lane(self, scope: Scope) -> ASGIApp | None:
        if scope["type"] == "websocket":
            lane = self.websocket_lane
        elif scope.get("method") == "POST":
            lane = self.graphql_lane
        else:
            return None
        return lane if scope["path"] == scope.get("root_path", "") + GRAPHQL_PATH else None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services, open_sessions(settings) as sessions:
            app.state.services = services
            app.state.sessions = sessions
            # Built here, not at import: its tools need the services.
            app.state.mcp = build_mcp_server(services)
            mount_http(app.state.mcp, settings)
            if not settings.auth:
                logger.warning(
                    "AUTHENTICATION IS OFF (AITASKS_AUTH=off): anyone who can reach this "
                    "API acts as the caller %r. Development only.",
                    DEVELOPMENT_CALLER,
                )
            _freeze_startup_objects()
            watcher = (
                asyncio.create_task(graphql_app.watch_keys(services), name="websocket-keys")
                if settings.auth
                else None
            )
            try:
                async with app.state.mcp.session_manager.run():
                    yield
            finally:
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher

    traced = settings.opentelemetry
    app = Api(
        title="aitasks",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": traced, "metrics": traced, "logs": traced},
    )
    graphql_app = GraphQLApp(settings)
    app.state.graphql = graphql_app
    guarded = OutageGuard(graphql_app, settings.outage_retry_after_seconds)
    # Routes, not a Mount: a Mount would redirect `/graphql` to `/graphql/`.
    app.router.routes.append(Route(GRAPHQL_PATH, guarded, methods=["GET", "POST"]))
    app.router.routes.append(WebSocketRoute(GRAPHQL_PATH, graphql_app))
    if not traced:
        app.graphql_lane = RequestLog(BodySizeLimit(guarded, settings.request_max_bytes))
        app.websocket_lane = RequestLog(graphql_app)
    app.router.routes.append(
        Route("/tasks/{task_id}/artifacts/{name}", download_artifact, methods=["GET"])
    )
    app.router.routes.append(Route(MCP_PATH, McpEndpoint(settings.mcp_sessions_tracked)))
    app.router.routes.append(Route("/login", login_page, methods=["GET"]))
    app.router.routes.append(Route("/login", login, methods=["POST"]))
    app.add_middleware(OutageGuard, retry_after_seconds=settings.outage_retry_after_seconds)
    app.router.routes.append(Route("/logout", logout, methods=["POST"]))
    app.add_middleware(BodySizeLimit, max_bytes=settings.request_max_bytes)
    # Outermost, so that even a refused request is logged with its id.
    app.add_middleware(RequestLog)

    app.router.routes.append(Route("/healthz", healthz, methods=["GET"]))
    app.router.routes.append(Route("/readyz", readyz, methods=["GET"]))
    app.router.routes.append(Route("/metrics", metrics, methods=["GET"]))
    # Last: every other GET is the web app's (a file, or a page the app routes itself).
    app.router.routes.append(Route("/{path:path}", graphql_app.web, methods=["GET", "HEAD"]))
    return app
