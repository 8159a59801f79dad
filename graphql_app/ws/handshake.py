"""The HTTP half of a WebSocket: the opening handshake of RFC 6455 section 4.2.

uvicorn's HTTP protocol has parsed the request already and hands it over re-serialised
(request line, headers, blank line); this checks what a WebSocket needs of it and writes
the answers: 101 with the accept hash, or a refusal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

from graphql_app.ws.sharing import SharedValues

VERSION = b"13"
# What the accept hash appends to the client's key (RFC 6455 section 1.3).
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The decoded Sec-WebSocket-Key: 16 random bytes (RFC 6455 section 4.1).
KEY_BYTES = 16
HEAD_END = b"\r\n\r\n"
CRLF = b"\r\n"

# Headers that are the same on most connections (set by the client's library, its
# browser, the load balancer), kept once for all: an idle socket's scope holds its
# headers for as long as it is open, and most of them repeat from socket to socket.
# At most SHARED_HEADERS_MAX distinct ones are kept, none longer than
# SHARED_HEADER_MAX_BYTES, so odd clients cannot grow the table.
SHARED_HEADER_NAMES = frozenset(
    {
        b"host",
        b"connection",
        b"upgrade",
        b"sec-websocket-version",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
        b"user-agent",
        b"origin",
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"pragma",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    }
)
SHARED_HEADERS_MAX = 1024
SHARED_HEADER_MAX_BYTES = 512
# Names of headers whose values differ on every connection, shared by name only.
OWN_VALUE_NAMES = (b"sec-websocket-key", b"cookie", b"authorization", b"x-forwarded-for")

Headers = list[tuple[bytes, bytes]]
_shared_headers: SharedValues[tuple[bytes, bytes]] = SharedValues(
    SHARED_HEADERS_MAX, SHARED_HEADER_MAX_BYTES
)
_shared_names = {name: name for name in OWN_VALUE_NAMES}


class HandshakeRefused(Exception):
    """The request cannot become a WebSocket; `response` is the HTTP answer to send."""

    def __init__(self, status: HTTPStatus, reason: str, headers: Headers | None = None) -> None:
        super().__init__(reason)
        self.response = response(
            status, [*(headers or []), (b"content-type", b"text/plain")], reason.encode()
        )


@dataclass(frozen=True, slots=True)
class Handshake:
    """A valid opening request, as the ASGI scope and the 101 answer need it."""

    path: bytes
    query_string: bytes
    headers: Headers
    key: bytes
    subprotocols: list[str]


def parse(head: bytes) -> Handshake:
    """The request in `head` (without the blank line), or HandshakeRefused."""
    request_line, *header_lines = head.split(CRLF)
    method, target, version = _request_line(request_line)
    headers = [_header(line) for line in header_lines]
    if method != b"GET" or version != b"HTTP/1.1":
        raise HandshakeRefused(HTTPStatus.BAD_REQUEST, "A WebSocket opens with GET over HTTP/1.1.")
    if b"upgrade" not in _tokens(headers, b"connection") or b"websocket" not in _tokens(
        headers, b"upgrade"
    ):
        raise HandshakeRefused(HTTPStatus.BAD_REQUEST, "Not a WebSocket upgrade request.")
    if _values(headers, b"sec-websocket-version") != [VERSION]:
        raise HandshakeRefused(
            HTTPStatus.UPGRADE_REQUIRED,
            "Only WebSocket version 13 is supported.",
            [(b"sec-websocket-version", VERSION)],
        )
    path, _, query_string = target.partition(b"?")
    subprotocols = [
        token.decode("latin-1")
        for token in _tokens(headers, b"sec-websocket-protocol", lower=False)
    ]
    return Handshake(path, query_string, headers, _key(headers), subprotocols)


def accept_value(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for the client's key: RFC 6455's hash, written out rather
    than taken from websockets.utils, which does not document it."""
    return base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())


def switching_protocols(handshake: Handshake, subprotocol: str | None, headers: Headers) -> bytes:
    """The 101 answer that opens the WebSocket."""
    fields: Headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_value(handshake.key)),
    ]
    if subprotocol is not None:
        if subprotocol not in handshake.subprotocols:
            raise RuntimeError(f"the client did not offer the subprotocol {subprotocol!r}")
        fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    return _head(HTTPStatus.SWITCHING_PROTOCOLS, [*fields, *headers])


def response(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A complete answer that ends the connection (a refusal, or an error)."""
    fields = [*headers, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    return _head(status, fields) + body


def response_head(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The head of an answer whose body follows until the connection closes."""
    return _head(status, [*headers, (b"connection", b"close")])


def _head(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    phrase = _phrase(status)
    lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
    for name, value in headers:
        if CRLF[:1] in name + value or CRLF[1:] in name + value:
            raise RuntimeError(f"a header may not contain a line break: {name!r}")
        lines.append(name + b": " + value)
    return CRLF.join(lines) + HEAD_END


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HandshakeRefused(HTTPStatus.BAD_REQUEST, "Malformed request line.")
    return parts[0], parts[1], parts[2]


def _header(line: bytes) -> tuple[bytes, bytes]:
    name, colon, value = line.partition(b":")
    if not colon or not name or name != name.strip():
        raise HandshakeRefused(HTTPStatus.BAD_REQUEST, "Malformed header line.")
    return _shared((name.lower(), value.strip()))


def _shared(header: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """The one copy of a common header, or the header itself."""
    name, value = header
    if name not in SHARED_HEADER_NAMES:
        return (_shared_names.get(name, name), value)
    return _shared_headers.share(header, len(value))


def _values(headers: Headers, name: bytes) -> list[bytes]:
    return [value for header, value in headers if header == name]


def _tokens(headers: Headers, name: bytes, *, lower: bool = True) -> list[bytes]:
    """The comma-separated tokens of every `name` header."""
    tokens = []
    for value in _values(headers, name):
        for token in value.split(b","):
            token = token.strip()
            if token:
                tokens.append(token.lower() if lower else token)
    return tokens


def _key(headers: Headers) -> bytes:
    keys = _values(headers, b"sec-websocket-key")
    if len(keys) == 1:
        try:
            if len(base64.b64decode(keys[0], validate=True)) == KEY_BYTES:
                return keys[0]
        except binascii.Error:
            pass
    raise HandshakeRefused(HTTPStatus.BAD_REQUEST, "Missing or invalid Sec-WebSocket-Key.")
