"""The WebSocket transport: graphql-transport-ws, and RFC 6455 under it.

`graphql_ws` is the protocol handler (Strawberry's, with a shared path that serves every
`taskStatus` subscriber of a task from one Redis listener); `messages` checks each
message's shape and a socket's key before Strawberry reads it; `protocol` and
`handshake` are the lean WebSocket protocol uvicorn runs when AITASKS_WS_PROTOCOL=lean;
`sharing` keeps one copy of what many sockets hold alike. It may import `schema`,
`tasks` and `persistence`; the private library names it relies on come only through
`schema.internals`. The HTTP app and the server use it; it imports neither.
"""
