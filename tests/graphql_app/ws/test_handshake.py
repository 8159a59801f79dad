"""The opening handshake's HTTP side: what it takes from a request and what it answers."""

from __future__ import annotations

import pytest

from graphql_app.ws import handshake as ws_handshake
from graphql_app.ws.handshake import HandshakeRefused

# RFC 6455 section 1.3's own example.
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _request(*extra: bytes, version: bytes = b"13", key: bytes = RFC_KEY) -> bytes:
    lines = [
        b"GET /graphql?x=1 HTTP/1.1",
        b"Host: example.test",
        b"Upgrade: WebSocket",
        b"Connection: keep-alive, Upgrade",
        b"Sec-WebSocket-Version: " + version,
        b"Sec-WebSocket-Key: " + key,
        *extra,
    ]
    return b"\r\n".join(lines)


def test_the_accept_value_is_the_rfcs() -> None:
    assert ws_handshake.accept_value(RFC_KEY) == RFC_ACCEPT


def test_a_valid_request_gives_path_query_headers_and_offered_subprotocols() -> None:
    handshake = ws_handshake.parse(
        _request(b"Sec-WebSocket-Protocol: graphql-transport-ws, graphql-ws")
    )
    assert handshake.path == b"/graphql"
    assert handshake.query_string == b"x=1"
    assert (b"host", b"example.test") in handshake.headers
    assert handshake.subprotocols == ["graphql-transport-ws", "graphql-ws"]


def test_the_101_names_the_chosen_subprotocol_and_refuses_one_not_offered() -> None:
    handshake = ws_handshake.parse(_request(b"Sec-WebSocket-Protocol: graphql-transport-ws"))
    answer = ws_handshake.switching_protocols(handshake, "graphql-transport-ws", [])
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: " + RFC_ACCEPT + b"\r\n" in answer
    assert b"sec-websocket-protocol: graphql-transport-ws\r\n" in answer
    with pytest.raises(RuntimeError):
        ws_handshake.switching_protocols(handshake, "graphql-ws", [])


def test_a_header_with_a_line_break_is_never_written() -> None:
    handshake = ws_handshake.parse(_request())
    with pytest.raises(RuntimeError):
        ws_handshake.switching_protocols(handshake, None, [(b"x-evil", b"a\r\nset-cookie: b")])


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (_request(version=b"8"), 426),
        (_request(key=b"dG9vIHNob3J0"), 400),
        (_request(key=b"not base64!"), 400),
        (_request(b"Sec-WebSocket-Key: " + RFC_KEY), 400),
        (_request().replace(b"GET", b"POST"), 400),
        (_request().replace(b"Upgrade: WebSocket", b"Upgrade: h2c"), 400),
        (_request(b"no colon here"), 400),
    ],
)
def test_a_request_that_cannot_open_a_websocket_is_refused(
    request_head: bytes, status: int
) -> None:
    with pytest.raises(HandshakeRefused) as refused:
        ws_handshake.parse(request_head)
    assert refused.value.response.startswith(b"HTTP/1.1 %d " % status)


def test_common_headers_are_shared_between_connections() -> None:
    first, second = ws_handshake.parse(_request()), ws_handshake.parse(_request())
    assert first.headers[0] is second.headers[0]  # host
    key_first, key_second = first.headers[4], second.headers[4]
    assert key_first[0] is key_second[0]  # the key's name, but not its value
