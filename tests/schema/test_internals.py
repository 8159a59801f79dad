"""Canaries for the other libraries' internals we touch (`schema/internals.py`): one per
name, each failing with the name and the installed version before anything subtler
breaks. When one fails after an upgrade, read what changed in that library, adapt the
code named in the fence's comment, then raise the version bound in pyproject.toml."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version

import pytest
import strawberry
import uvicorn
from graphql import GraphQLSchema, parse
from graphql.execution import Executor
from graphql.validation import ASTValidationRule
from starlette.websockets import WebSocket
from strawberry.types import get_object_definition
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, Side

from schema import schema
from schema.internals import (
    STRAWBERRY_HANDLE_LOOP_SHA256,
    STRAWBERRY_VALIDATION_RULES,
    SUBFIELDS_MEMO,
    TRANSPORT_WS_HANDLER_ATTRIBUTES,
    TRANSPORT_WS_HANDLER_METHODS,
    InputContext,
    ServerState,
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    StrawberryType,
    TransportWSHandler,
    TransportWSOperation,
    close_received,
    close_sent,
    forget_subfields,
    frames_failed,
    frames_idle,
    graphql_schema,
    handle_loop_digest,
    install_input_builder,
    to_camel_case,
)

STRAWBERRY = f"strawberry-graphql {version('strawberry-graphql')}"
GRAPHQL_CORE = f"graphql-core {version('graphql-core')}"
UVICORN = f"uvicorn {version('uvicorn')}"

TASK_STATUS = 'subscription { taskStatus(id: "x") { sequence task { id } } }'


def test_strawberry_schema_still_holds_its_graphql_core_schema_as_underscore_schema() -> None:
    assert isinstance(graphql_schema(schema), GraphQLSchema), (
        f"Strawberry's Schema._schema is no longer a GraphQLSchema in {STRAWBERRY}"
    )


def test_strawberry_still_validates_with_the_rules_the_fence_names() -> None:
    from strawberry.schema import schema as strawberry_schema

    source = inspect.getsource(strawberry_schema.validate_document)
    for rule in STRAWBERRY_VALIDATION_RULES:
        assert issubclass(rule, ASTValidationRule)
        assert rule.__name__ in source, (
            f"Strawberry's validate_document no longer adds {rule.__name__} in {STRAWBERRY}"
        )
    added = [name for name in dir(strawberry_schema) if name.endswith("ValidationRule")]
    assert sorted(added) == sorted(rule.__name__ for rule in STRAWBERRY_VALIDATION_RULES), (
        f"Strawberry's schema module imports other validation rules in {STRAWBERRY}: {added}"
    )


def test_graphql_core_executor_still_memoizes_subfields_where_the_fence_resets_them() -> None:
    executor = Executor.build(graphql_schema(schema), parse(TASK_STATUS))
    assert isinstance(executor, Executor)
    event = executor.build_per_event_executor(None)
    assert isinstance(getattr(event, SUBFIELDS_MEMO, None), dict), (
        f"graphql-core's Executor.{SUBFIELDS_MEMO} is gone in {GRAPHQL_CORE}"
    )
    forget_subfields(event)
    assert getattr(event, SUBFIELDS_MEMO) == {}
    assert getattr(executor, SUBFIELDS_MEMO) is not getattr(event, SUBFIELDS_MEMO)


def test_uvicorn_config_still_sets_loaded_app_when_it_loads() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    config = uvicorn.Config(app, lifespan="off")
    config.load()
    assert callable(getattr(config, "loaded_app", None)), (
        f"uvicorn's Config.loaded_app is gone in {UVICORN}"
    )


def test_uvicorn_server_state_still_has_what_the_lean_protocol_reads() -> None:
    state = ServerState()
    for name, kind in (("connections", set), ("tasks", set), ("default_headers", list)):
        assert isinstance(getattr(state, name, None), kind), (
            f"uvicorn's ServerState.{name} is gone or changed in {UVICORN}"
        )
    protocol_init = inspect.signature(WebSocketsSansIOProtocol)
    assert list(protocol_init.parameters)[:3] == ["config", "server_state", "app_state"], (
        f"uvicorn's ws= protocol classes take other arguments in {UVICORN}"
    )


@pytest.mark.parametrize("name", TRANSPORT_WS_HANDLER_METHODS)
def test_strawberry_transport_ws_handler_still_has_the_method_we_override(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(TransportWSHandler, name, None)) or (
        inspect.isfunction(getattr(TransportWSHandler, name, None))
    ), f"Strawberry's BaseGraphQLTransportWSHandler.{name} is gone in {STRAWBERRY}"


@pytest.mark.parametrize("name", TRANSPORT_WS_HANDLER_ATTRIBUTES)
def test_strawberry_transport_ws_handler_still_sets_the_attribute_we_read(name: str) -> None:
    assigned = re.compile(rf"self\.{name}\b[^=\n]*= ")
    assert assigned.search(inspect.getsource(TransportWSHandler.__init__)), (
        f"Strawberry's BaseGraphQLTransportWSHandler no longer sets {name} in {STRAWBERRY}"
    )


def test_strawberry_transport_ws_operation_still_has_what_the_shared_path_uses() -> None:
    source = inspect.getsource(TransportWSOperation)
    for name in ("self.id =", "self.completed =", "def send_operation_message"):
        assert name in source, f"Strawberry's Operation lost {name!r} in {STRAWBERRY}"


def test_strawberry_transport_ws_loop_is_the_one_our_copy_follows() -> None:
    assert handle_loop_digest() == STRAWBERRY_HANDLE_LOOP_SHA256, (
        f"Strawberry's BaseGraphQLTransportWSHandler.handle changed in {STRAWBERRY}: "
        "compare it with TransportHandler.handle in graphql_app/ws/graphql_ws.py"
    )


def test_strawberry_asgi_websocket_adapter_still_keeps_starlettes_socket_as_ws() -> None:
    from strawberry.asgi import ASGIWebSocketAdapter

    assert "self.ws = response" in inspect.getsource(ASGIWebSocketAdapter.__init__), (
        f"Strawberry's ASGIWebSocketAdapter.ws is gone in {STRAWBERRY}"
    )
    response = inspect.signature(ASGIWebSocketAdapter.__init__).parameters["response"]
    assert response.annotation in (WebSocket, "WebSocket"), (
        f"Strawberry's ASGIWebSocketAdapter wraps another socket in {STRAWBERRY}"
    )


WEBSOCKETS = f"websockets {version('websockets')}"


def test_websockets_protocol_still_records_the_close_frames_each_side_sent() -> None:
    server = Protocol(Side.SERVER)
    assert close_received(server) is None and close_sent(server) is None, WEBSOCKETS
    client = Protocol(Side.CLIENT)
    client.send_close(4000, "done")
    server.receive_data(b"".join(client.data_to_send()))
    received = close_received(server)
    assert received is not None and (received.code, received.reason) == (4000, "done"), (
        f"websockets' Protocol.close_rcvd is gone or changed in {WEBSOCKETS}"
    )
    sent = close_sent(server)
    assert sent is not None and sent.code == 4000, (
        f"websockets' Protocol.close_sent is gone or changed in {WEBSOCKETS}"
    )


def test_websockets_protocol_still_keeps_the_parsers_failure() -> None:
    server = Protocol(Side.SERVER)
    assert not frames_failed(server), WEBSOCKETS
    server.receive_data(b"\x81\x05hello")  # unmasked: a client must mask
    assert frames_failed(server), f"websockets' Protocol.parser_exc is gone in {WEBSOCKETS}"


def test_websockets_protocol_still_shows_a_message_or_a_frame_in_progress() -> None:
    server = Protocol(Side.SERVER)
    client = Protocol(Side.CLIENT)
    assert frames_idle(server), WEBSOCKETS
    client.send_text(b"frag", fin=False)
    server.receive_data(b"".join(client.data_to_send()))
    assert not frames_idle(server), (
        f"websockets' Protocol.current_size no longer marks a fragmented message in {WEBSOCKETS}"
    )
    client.send_continuation(b"ment", fin=True)
    whole = b"".join(client.data_to_send())
    server.receive_data(whole[:3])
    assert not frames_idle(server), (
        f"websockets' Protocol.reader.buffer no longer holds a partial frame in {WEBSOCKETS}"
    )
    server.receive_data(whole[3:])
    assert frames_idle(server), WEBSOCKETS


@strawberry.input
class ProbeInput:
    some_value: int = 0


@strawberry.type
class ProbeQuery:
    @strawberry.field
    def probe(self, probe: ProbeInput) -> str:
        return type(probe).__name__ + str(probe.some_value)


@strawberry.input
class ProbeFields:
    items: list[int]
    maybe: strawberry.Maybe[int]
    optional: int | None = None


def test_strawberry_still_builds_an_input_with_the_builder_on_its_definition() -> None:
    built: list[InputContext] = []

    def builder(cls: type, value: object, context: InputContext) -> ProbeInput:
        built.append(context)
        return ProbeInput(some_value=42)

    install_input_builder(ProbeInput, builder)
    result = strawberry.Schema(ProbeQuery).execute_sync("{ probe(probe: {someValue: 1}) }")
    assert result.data == {"probe": "ProbeInput42"} and len(built) == 1, (
        f"Strawberry no longer builds inputs through StrawberryObjectDefinition.from_input "
        f"in {STRAWBERRY}: {result}"
    )
    assert callable(built[0].convert), f"InputContext.convert is gone in {STRAWBERRY}"


def test_strawberry_still_tells_field_types_apart_by_the_classes_the_fence_names() -> None:
    definition = get_object_definition(ProbeFields, strict=True)
    fields = {field.python_name: field.type for field in definition.fields}
    assert isinstance(fields["items"], StrawberryList), f"list fields changed in {STRAWBERRY}"
    assert isinstance(fields["maybe"], StrawberryMaybe), f"Maybe fields changed in {STRAWBERRY}"
    assert isinstance(fields["optional"], StrawberryOptional), (
        f"optional fields changed in {STRAWBERRY}"
    )
    assert issubclass(StrawberryList, StrawberryType)


def test_strawberry_default_name_converter_is_still_camel_case() -> None:
    assert to_camel_case("timeout_seconds") == "timeoutSeconds", (
        f"strawberry.utils.str_converters.to_camel_case changed in {STRAWBERRY}"
    )
