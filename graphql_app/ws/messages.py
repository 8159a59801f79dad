"""What a graphql-transport-ws message must look like before Strawberry reads it, and
whether a socket's key still holds.

Strawberry's handler reads a message as the protocol says it is (`message["type"]`,
`payload["query"]`...): JSON of another shape (`[1]`, a list as the payload, a number
as the id) raised inside it and closed the socket with 1011, its traceback in the log.
Here such a message closes the socket with 4400 and a fixed reason, as the protocol
asks for any invalid message.
"""

from __future__ import annotations

from typing import Any

from schema.context import Context

# graphql-transport-ws close codes.
BAD_REQUEST = 4400
FORBIDDEN = 4403
# graphql-ws's "internal server error", for a failure no message should have caused.
INTERNAL_ERROR = 4500
INTERNAL_ERROR_REASON = "Internal server error"
KEY_REVOKED_REASON = "Forbidden: the API key is revoked"
# RFC 6455's "try again later": a message met an outage of PostgreSQL or Redis (the key
# could not be checked, the task not read). graphql-ws clients reconnect on this code,
# as they do not on 4500; the reason names the server and never the error's text.
TRY_AGAIN_LATER = 1013
NESTED_TOO_DEEP = "WebSocket message is nested too deeply"
# Where the WebSocket's scope keeps the key its connection_init (or cookie) carried.
SOCKET_KEY_STATE = "aitasks_socket_key"

_NOT_AN_OBJECT = "WebSocket message must be a JSON object"
_NO_TYPE = "WebSocket message must have a string `type`"
_BAD_ID = "The message's `id` must be a string"
_BAD_PAYLOAD = "The message's `payload` must be an object"
_BAD_QUERY = "A subscribe message's payload needs `query` as a string"
_BAD_VARIABLES = "`variables` and `extensions` must be objects when given"
_BAD_OPERATION_NAME = "`operationName` must be a string when given"
# Message types whose payload, when there is one, is an object.
_OPTIONAL_PAYLOAD_TYPES = frozenset({"connection_init", "ping", "pong"})


def _optional(value: object, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def _subscribe_problem(message: dict[str, Any]) -> str | None:
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return _BAD_PAYLOAD
    if not isinstance(payload.get("query"), str):
        return _BAD_QUERY
    if not (
        _optional(payload.get("variables"), dict) and _optional(payload.get("extensions"), dict)
    ):
        return _BAD_VARIABLES
    if not _optional(payload.get("operationName"), str):
        return _BAD_OPERATION_NAME
    return None


def unavailable_reason(dependency: str) -> str:
    """The close reason for TRY_AGAIN_LATER (under the 123 bytes a close frame allows)."""
    return f"Service unavailable: {dependency} cannot be reached; try again shortly"


def message_problem(message: object) -> str | None:
    """Why a decoded message cannot be a graphql-transport-ws message; None when its
    shape is right (Strawberry then judges what it says)."""
    if not isinstance(message, dict):
        return _NOT_AN_OBJECT
    kind = message.get("type")
    if not isinstance(kind, str):
        return _NO_TYPE
    if kind in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        return _BAD_ID
    if kind == "subscribe":
        return _subscribe_problem(message)
    if kind in _OPTIONAL_PAYLOAD_TYPES and not _optional(message.get("payload"), dict):
        return _BAD_PAYLOAD
    return None


async def key_still_valid(context: Context) -> bool:
    """Whether the key this socket connected with (given, or behind its login session)
    still speaks for a caller (answers are cached for AITASKS_AUTH_CACHE_SECONDS)."""
    services = context.services
    if not services.settings.auth:
        return True
    key_hash = context.request.scope.get("state", {}).get(SOCKET_KEY_STATE)
    return await services.keys.caller_of_digest(key_hash) is not None
