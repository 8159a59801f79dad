"""Every name of another library's internals that our code touches, and only here.

The WebSocket transport (`graphql_app/ws/protocol.py`, `graphql_app/ws/graphql_ws.py`),
the prepared path (`schema/prepared.py`) and the input builder (`schema/inputs.py`) do
parts of uvicorn's, websockets', Strawberry's and graphql-core's work in fewer objects.
Where the libraries offer a public way, those modules use it; what is left has none, and
is reached through this module alone, so that one file says what an upgrade can break.
Each library named here has an upper version bound in pyproject.toml, and
`tests/schema/test_internals.py` has one canary per name that fails first, naming the
name and the installed version, when it changes.

It lives in `schema/` because both `schema` and `graphql_app` use it, and a layer may
only import downwards; it imports nothing of ours.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from graphql import ASTValidationRule, GraphQLSchema
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler as TransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    Operation as TransportWSOperation,
)
from strawberry.types import get_object_definition
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    StrawberryType,
)
from strawberry.utils.str_converters import to_camel_case
from uvicorn.server import ServerState

if TYPE_CHECKING:
    import strawberry
    from graphql.execution import Executor
    from starlette.websockets import WebSocket
    from uvicorn import Config
    from websockets.frames import Close
    from websockets.protocol import Protocol

__all__ = [
    "STRAWBERRY_HANDLE_LOOP_SHA256",
    "STRAWBERRY_VALIDATION_RULES",
    "TRANSPORT_WS_HANDLER_ATTRIBUTES",
    "TRANSPORT_WS_HANDLER_METHODS",
    "InputBuilder",
    "InputContext",
    "ServerState",
    "StrawberryList",
    "StrawberryMaybe",
    "StrawberryOptional",
    "StrawberryType",
    "TransportWSHandler",
    "TransportWSOperation",
    "close_received",
    "close_sent",
    "forget_subfields",
    "frames_failed",
    "frames_idle",
    "graphql_schema",
    "handle_loop_digest",
    "install_input_builder",
    "loaded_app",
    "starlette_socket",
    "to_camel_case",
]


def graphql_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema a Strawberry schema built (Strawberry: `Schema._schema`).

    Strawberry has no public accessor; its own extensions and printer read `_schema`,
    and its maintainers point users there (strawberry-graphql/strawberry#2590).
    """
    return schema._schema


# The rules Strawberry adds to graphql-core's when it validates a document (Strawberry:
# `strawberry.schema.validation_rules`, appended by `schema.schema.validate_document`).
# A document validated outside Strawberry must pass the same rules to get the same
# answer; Strawberry exports neither the rules nor the list of them.
STRAWBERRY_VALIDATION_RULES: tuple[type[ASTValidationRule], ...] = (
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)

# graphql-core's Executor attribute holding its memo of collected subfields (3.3).
SUBFIELDS_MEMO = "_relevant_sub_fields"


def forget_subfields(executor: Executor) -> None:
    """Empty a per-event executor's subfield memo (graphql-core:
    `Executor._relevant_sub_fields`).

    The memo is keyed on the identity of lists each execution makes afresh, and a
    per-event executor shares it with the executor it was built from: kept for the life
    of a subscription, it would grow by an entry per update. graphql-core offers no way
    to build a per-event executor without it.
    """
    setattr(executor, SUBFIELDS_MEMO, {})


def loaded_app(config: Config) -> Any:
    """The ASGI app uvicorn serves, wrapped as uvicorn wraps it (uvicorn:
    `Config.loaded_app`, set by `Config.load()`).

    A `ws=` protocol class is handed the config and must call the app itself, as
    uvicorn's own protocols do through this attribute; it is not documented.
    """
    if not config.loaded:
        config.load()
    return config.loaded_app


# uvicorn: `uvicorn.server.ServerState`, what a `ws=` protocol class is constructed with
# (its connections, tasks and default headers). The protocol-class interface is how
# uvicorn takes a custom WebSocket implementation, but the class itself is undocumented.
# Re-exported above.

# Strawberry: `BaseGraphQLTransportWSHandler` and its `Operation`, re-exported above. A
# view's `graphql_transport_ws_handler_class` is where Strawberry takes a subclass, but
# neither the class nor its methods are documented. `graphql_app/ws/graphql_ws.py` overrides
# these methods and reads these attributes; the canaries check that each still exists.
TRANSPORT_WS_HANDLER_METHODS = (
    "handle",
    "handle_message",
    "handle_invalid_message",
    "handle_subscribe",
    "handle_connection_init",
    "run_operation",
    "on_request_accepted",
    "shutdown",
)
TRANSPORT_WS_HANDLER_ATTRIBUTES = (
    "view",
    "websocket",
    "context",
    "connection_acknowledged",
    "connection_init_timeout_task",
)

# The digest of Strawberry's graphql-transport-ws message loop (`handle` above), which
# `graphql_app/ws/graphql_ws.py` replaces with a copy that keeps no message while it waits
# for the next: Strawberry has no hook inside the loop. A change to Strawberry's loop
# must be looked at, and the copy made to follow it, before this digest is updated.
STRAWBERRY_HANDLE_LOOP_SHA256 = "38622a72d445f675b7b55290cb8d5f75e54d61b78d1d91c7a3ea09d471080296"


def handle_loop_digest() -> str:
    """The SHA-256 of the source of Strawberry's graphql-transport-ws `handle()`."""
    source = inspect.getsource(TransportWSHandler.handle)
    return hashlib.sha256(source.encode()).hexdigest()


# websockets: the sans-io `Protocol`'s state, as `graphql_app/ws/protocol.py` reads it.
# Its documented properties (`state`, `close_code`, `close_exc`) say how a connection
# ended only once it is CLOSED; the lean protocol must tell the app while the closing
# handshake is under way, and drops an idle parser, which nothing public describes.


def close_received(protocol: Protocol) -> Close | None:
    """The close frame the client sent, if any (websockets: `Protocol.close_rcvd`)."""
    return protocol.close_rcvd


def close_sent(protocol: Protocol) -> Close | None:
    """The close frame the server sent, if any (websockets: `Protocol.close_sent`)."""
    return protocol.close_sent


def frames_failed(protocol: Protocol) -> bool:
    """Whether the client broke the protocol (websockets: `Protocol.parser_exc`)."""
    return protocol.parser_exc is not None


def frames_idle(protocol: Protocol) -> bool:
    """No fragmented message in progress and no partial frame buffered (websockets:
    `Protocol.current_size`, `Protocol.reader.buffer`)."""
    return protocol.current_size is None and not protocol.reader.buffer


def starlette_socket(handler: TransportWSHandler[Any, Any]) -> WebSocket:
    """The Starlette WebSocket under a handler (Strawberry: the ASGI adapter's `ws`).

    The shared path sends a pre-encoded `next` message as it is, and reads messages
    without Strawberry's per-socket generator; the adapter has no public way to either.
    """
    return handler.websocket.ws  # type: ignore[attr-defined,no-any-return]


# Strawberry: building an input class from the value graphql-core coerced
# (`schema/inputs.py`). Strawberry calls a builder set on an input type's definition
# (`StrawberryObjectDefinition.from_input`, with an `InputContext`) instead of converting
# field by field, but documents neither. The type classes a field's type is told apart by
# live in `strawberry.types.base` (`StrawberryMaybe` outside its `__all__`), and the
# schema's default name converter is `strawberry.utils.str_converters.to_camel_case`.
# Re-exported above.
InputBuilder = Callable[[type, Mapping[str, Any], InputContext], Any]


def install_input_builder(input_class: type, builder: InputBuilder) -> None:
    """Have Strawberry build `input_class` with `builder` (Strawberry:
    `StrawberryObjectDefinition.from_input`)."""
    get_object_definition(input_class, strict=True).from_input = builder
