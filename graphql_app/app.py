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
from typing import Any

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
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType
from websockets.frames import CloseCode

from graphql_app.artifacts import download_artifact
from graphql_app.auth import key_of_connection
from graphql_app.health import healthz, metrics, readyz
from graphql_app.limits import BodySizeLimit
from graphql_app.logs import RequestLog
from graphql_app.mcp_server import MCP_PATH, McpEndpoint, build_mcp_server, mount_http
from graphql_app.sessions import (
    admit_request,
    login,
    login_page,
    logout,
    open_sessions,
    socket_caller,
)
from graphql_app.settings import Settings, get_settings
from graphql_app.web import WebApp
from graphql_app.websocket import SharedSubscriptions, TransportHandler
from graphql_app.ws_protocol import SHUTDOWN_REASON
from persistence.creation import TaskInserts
from persistence.database import POOL_SIZE, create_engine, create_pool, create_sessionmaker
from persistence.events import TaskEventHub
from schema import QueryLimits, build_schema
from schema.context import Context, Services
from schema.prepared import PreparedOperations
from tasks.callers import DEVELOPMENT_CALLER, KeyChecker
from tasks.context import CURRENT_REQUEST
from tasks.dispatch import Dispatcher
from tasks.limits import RateLimiter

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


# The keys of a JSON request that the prepared path serves; any other (`extensions`)
# goes to Strawberry.
PLAIN_REQUEST_KEYS = frozenset({"query", "variables", "operationName"})

WEBSOCKETS = Gauge("aitasks_websockets_open", "WebSockets open and past connection_init.")

# Where the HTTP gate leaves the caller for the operation's context, and where a
# WebSocket's connection records whose socket it is.
CALLER_STATE = "aitasks_caller"
SOCKET_OWNER_STATE = "aitasks_socket_owner"


def _asks_for_graphiql(scope: Scope) -> bool:
    """A browser's GET for the GraphiQL page itself (no operation), served to anyone:
    the operations it then sends carry the login cookie."""
    if scope["method"] != "GET" or b"query=" in scope.get("query_string", b""):
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
        # Open WebSockets per caller on this process.
        self._sockets: Counter[str] = Counter()
        # How to reach each open WebSocket, to tell it the server is going away.
        self._open: dict[int, Send] = {}

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
        except Exception as error:
            # Strawberry maps the multipart `map` onto the variables without checking each
            # path (one past a list's end, into a string...): a bad request, not a 500.
            raise HTTPException(400, f"The request could not be read: {error!r}") from None

    def encode_json(self, data: object) -> str:
        # orjson writes a response several times faster than the standard library. Text,
        # not bytes: Strawberry sends bytes over a WebSocket as binary frames, which
        # graphql-ws clients do not read. Requests are still read with `json`, which
        # lets a lone surrogate through to the input checks, so the client hears which
        # field is wrong.
        return orjson.dumps(data).decode()

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
        except ValueError:
            return False
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
        context.caller = await socket_caller(
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
        context.request.scope.setdefault("state", {})[SOCKET_OWNER_STATE] = name
        return UNSET


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """The connections and helpers an API process (or `aitasks mcp`) shares, closed on
    exit."""
    database_url, redis_url = settings.require_services()
    engine = create_engine(database_url, APPLICATION_NAME)
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
    )
    await hub.start()
    pool = await create_pool(engine, APPLICATION_NAME, POOL_SIZE)
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
            keys=KeyChecker(sessionmaker, settings.auth_cache_seconds),
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
# it took 100-600 ms on this shared 2-core machine, stopping every subscriber. Updates now
# make no cyclic garbage (checked with gc.DEBUG_SAVEALL at 200 changes/s), so what full
# passes free comes from sockets closing; at 10 a latency run made 7 full passes, at 100
# one, and the young passes kept their 700 / 10 so that each stays short (at 10,000 for
# the youngest, one took 240 ms over the objects of a burst of new subscriptions).
GC_THRESHOLDS = (700, 10, 100)


def _freeze_startup_objects() -> None:
    """Keep everything built at start-up (modules, schema, pools) out of the garbage
    collector's full passes: measured under load, a pass over them took 70-105 ms every
    second or two, and 6-13 ms once they were frozen. Then make full passes rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Api(FastAPI):
    """FastAPI, with GraphQL's WebSockets and POSTs handed to Strawberry's app past the
    middleware and the router.

    A WebSocket is a request that lasts hours, and each middleware and the router keep
    a coroutine frame for it all that time, some an object or an exit stack too: 6.5 KiB
    of the 44 KiB an idle one-subscription socket held (tracemalloc, 1,000 sockets), and
    every update sent went through each one's `send` wrapper. A POST is the API's hot
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
            async with app.state.mcp.session_manager.run():
                yield

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
    # Routes, not a Mount: a Mount would redirect `/graphql` to `/graphql/`.
    app.router.routes.append(Route(GRAPHQL_PATH, graphql_app, methods=["GET", "POST"]))
    app.router.routes.append(WebSocketRoute(GRAPHQL_PATH, graphql_app))
    if not traced:
        app.graphql_lane = RequestLog(BodySizeLimit(graphql_app, settings.request_max_bytes))
        app.websocket_lane = RequestLog(graphql_app)
    app.router.routes.append(
        Route("/tasks/{task_id}/artifacts/{name}", download_artifact, methods=["GET"])
    )
    app.router.routes.append(Route(MCP_PATH, McpEndpoint()))
    app.router.routes.append(Route("/login", login_page, methods=["GET"]))
    app.router.routes.append(Route("/login", login, methods=["POST"]))
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
