"""RFC 6455 as a server must keep it, for both WebSocket protocols the API can run
(AITASKS_WS_PROTOCOL=lean and uvicorn): the cases of the Autobahn test suite's categories
that apply to a server, sent as raw frames over a bare TCP socket to a real uvicorn.

framing (Autobahn 1, 3, 4), fragmentation (5), control frames (2), UTF-8 in text
frames (6), the close handshake (7) and limits (9). Both protocols parse frames with
websockets' sans-io `Protocol`, and answer every case alike."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fixtures.ws_server import WS_PROTOCOLS, WsServer, serve

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 10.0
MAX_SIZE = 64 * 1024
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# What the server sends when the connection is dropped without a close frame.
DROPPED = -1
PROTOCOL_ERROR, INVALID_DATA, TOO_BIG = 1002, 1007, 1009


@pytest.fixture(params=sorted(WS_PROTOCOLS), scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[WsServer]:
    with serve(WS_PROTOCOLS[request.param], ws_max_size=MAX_SIZE) as running:
        yield running


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One frame as a client writes it (masked unless told otherwise)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class Client:
    """A bare TCP socket that has done the opening handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: WsServer) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_SECONDS)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def receive(self) -> tuple[int, bytes]:
        """The next frame's opcode and payload (a server's frames are unmasked)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), WAIT_SECONDS)
        assert second & 0x80 == 0, "a server must not mask its frames"
        assert first & 0x80, "the server fragmented a frame this test expects whole"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def closed_with(self) -> int:
        """The code of the server's close frame (frames before it skipped), after which the
        server ends the TCP connection; DROPPED if it ends it without one."""
        try:
            while True:
                opcode, payload = await self.receive()
                if opcode == CLOSE:
                    break
        except asyncio.IncompleteReadError:
            return DROPPED
        code = struct.unpack("!H", payload[:2])[0] if payload else 1005
        self.send(frame(CLOSE, payload[:2]))
        # Then the server ends the connection: at once after a failure (which may reset
        # it, as our answer arrives after the server closed), or after our answer.
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(self.reader.read(), WAIT_SECONDS) == b""
        return code

    async def echoes(self, opcode: int, payload: bytes) -> None:
        self.send(frame(opcode, payload))
        assert await self.receive() == (opcode, payload)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def client(server: WsServer) -> AsyncIterator[Client]:
    connected = await Client.connect(server)
    yield connected
    connected.close()


# Framing (Autobahn 1.1, 1.2, 3, 4)


@pytest.mark.parametrize("length", [0, 125, 126, 127, 128, 65535, 65536])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
async def test_a_message_of_any_length_encoding_comes_back_whole(
    client: Client, opcode: int, length: int
) -> None:
    await client.echoes(opcode, b"*" * length)


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
async def test_a_frame_with_a_reserved_bit_set_fails_the_connection(
    client: Client, rsv: int
) -> None:
    client.send(frame(TEXT, b"hello", rsv=rsv))
    assert await client.closed_with() == PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
async def test_a_frame_with_a_reserved_opcode_fails_the_connection(
    client: Client, opcode: int
) -> None:
    client.send(frame(opcode, b"hello"))
    assert await client.closed_with() == PROTOCOL_ERROR


async def test_an_unmasked_client_frame_fails_the_connection(client: Client) -> None:
    client.send(frame(TEXT, b"hello", masked=False))
    assert await client.closed_with() == PROTOCOL_ERROR


# Fragmentation (Autobahn 5)


async def test_a_message_in_many_fragments_arrives_as_one(client: Client) -> None:
    client.send(
        frame(TEXT, b"frag", fin=False),
        frame(CONT, b"", fin=False),
        frame(CONT, b"men", fin=False),
        frame(CONT, b"ted"),
    )
    assert await client.receive() == (TEXT, b"fragmented")


async def test_a_ping_between_fragments_is_answered_first(client: Client) -> None:
    client.send(frame(BINARY, b"one", fin=False), frame(PING, b"in between"))
    client.send(frame(CONT, b"two"))
    assert await client.receive() == (PONG, b"in between")
    assert await client.receive() == (BINARY, b"onetwo")


async def test_a_continuation_with_nothing_to_continue_fails_the_connection(
    client: Client,
) -> None:
    client.send(frame(CONT, b"orphan"))
    assert await client.closed_with() == PROTOCOL_ERROR


async def test_a_new_message_inside_a_fragmented_one_fails_the_connection(
    client: Client,
) -> None:
    client.send(frame(TEXT, b"start", fin=False), frame(TEXT, b"again"))
    assert await client.closed_with() == PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
async def test_a_fragmented_control_frame_fails_the_connection(client: Client, opcode: int) -> None:
    client.send(frame(opcode, b"", fin=False))
    assert await client.closed_with() == PROTOCOL_ERROR


# Control frames (Autobahn 2)


@pytest.mark.parametrize("payload", [b"", b"p" * 125, bytes(range(125))])
async def test_a_ping_is_answered_with_its_payload(client: Client, payload: bytes) -> None:
    client.send(frame(PING, payload))
    assert await client.receive() == (PONG, payload)


async def test_a_ping_over_125_bytes_fails_the_connection(client: Client) -> None:
    client.send(frame(PING, b"p" * 126))
    assert await client.closed_with() == PROTOCOL_ERROR


async def test_an_unsolicited_pong_is_ignored(client: Client) -> None:
    client.send(frame(PONG, b"nobody asked"))
    await client.echoes(TEXT, b"still here")


# UTF-8 in text frames (Autobahn 6)


VALID_TEXT = "κόσμε, 世界, 🍓".encode()


async def test_valid_utf8_text_comes_back(client: Client) -> None:
    await client.echoes(TEXT, VALID_TEXT)


@pytest.mark.parametrize("cut", [1, 8, 9, 10, len(VALID_TEXT) - 2])
async def test_valid_utf8_split_inside_a_character_across_fragments_comes_back(
    client: Client, cut: int
) -> None:
    client.send(frame(TEXT, VALID_TEXT[:cut], fin=False), frame(CONT, VALID_TEXT[cut:]))
    assert await client.receive() == (TEXT, VALID_TEXT)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b"\xc0\xaf",  # an overlong "/"
        b"\xed\xa0\x80",  # a UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        "κόσμε".encode()[:-1],  # cut short
    ],
)
async def test_invalid_utf8_text_fails_the_connection_with_1007(
    client: Client, payload: bytes
) -> None:
    client.send(frame(TEXT, payload))
    assert await client.closed_with() == INVALID_DATA


async def test_invalid_utf8_in_a_later_fragment_fails_the_connection_with_1007(
    client: Client,
) -> None:
    client.send(frame(TEXT, b"fine so far", fin=False), frame(CONT, b"\xed\xa0\x80"))
    assert await client.closed_with() == INVALID_DATA


# The close handshake (Autobahn 7)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 3000, 3999, 4000, 4999])
async def test_a_valid_close_code_is_answered_with_the_same(client: Client, code: int) -> None:
    client.send(frame(CLOSE, close_payload(code, b"bye")))
    assert await client.closed_with() == code


async def test_a_close_without_a_code_is_answered_without_one(client: Client) -> None:
    client.send(frame(CLOSE))
    assert await client.closed_with() == 1005


async def test_a_close_with_the_longest_reason_is_answered(client: Client) -> None:
    client.send(frame(CLOSE, close_payload(1000, b"r" * 123)))
    assert await client.closed_with() == 1000


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1016, 1015, 1100, 2000, 2999, 5000, 65535]
)
async def test_an_invalid_close_code_fails_the_connection(client: Client, code: int) -> None:
    client.send(frame(CLOSE, close_payload(code)))
    assert await client.closed_with() == PROTOCOL_ERROR


async def test_a_close_payload_of_one_byte_fails_the_connection(client: Client) -> None:
    client.send(frame(CLOSE, b"\x03"))
    assert await client.closed_with() == PROTOCOL_ERROR


async def test_a_close_reason_that_is_not_utf8_fails_the_connection(client: Client) -> None:
    client.send(frame(CLOSE, close_payload(1000, b"\xff\xfe")))
    assert await client.closed_with() == INVALID_DATA


async def test_data_after_the_close_frame_is_not_echoed(client: Client) -> None:
    client.send(frame(CLOSE, close_payload(1000)), frame(TEXT, b"too late"))
    opcode, payload = await client.receive()
    assert (opcode, payload[:2]) == (CLOSE, close_payload(1000))


# Limits (Autobahn 9, with the server's ws_max_size)


async def test_a_message_at_the_size_limit_comes_back(client: Client) -> None:
    await client.echoes(BINARY, b"m" * MAX_SIZE)


async def test_a_frame_over_the_size_limit_fails_the_connection_with_1009(
    client: Client,
) -> None:
    # Only the head, which announces the length: a server stops reading there, and a
    # payload still arriving after it closed would reset the connection before the
    # client read the close frame.
    client.send(frame(BINARY, b"m" * (MAX_SIZE + 1))[: 2 + 8 + 4])
    assert await client.closed_with() == TOO_BIG


async def test_fragments_adding_up_past_the_size_limit_fail_the_connection_with_1009(
    client: Client,
) -> None:
    half = b"m" * (MAX_SIZE // 2)
    client.send(frame(TEXT, half, fin=False), frame(CONT, half, fin=False), frame(CONT, b"m"))
    assert await client.closed_with() == TOO_BIG
