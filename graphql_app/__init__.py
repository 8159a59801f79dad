"""The composition root and the edges: everything a client or an operator touches.

Four subpackages, one per concern: `http` (the ASGI app, its guards, and the uvicorn
server), `ws` (the WebSocket transport: graphql-transport-ws over RFC 6455), `mcp` (the
MCP server for AI agents) and `cli` (the `aitasks` command, its terminal client and the
dev supervisor). One module here serves all of them: `auth` (who a caller is). This
package may import `schema`, `tasks` and `persistence`; nothing below imports it. Inside
it, `ws` and `mcp` import neither `http` nor `cli`, and `http` does not import `cli`
(tests/test_layers.py holds all of this).
"""
