"""The HTTP edge: the ASGI app and what guards and serves it.

`app` builds the FastAPI app around Strawberry's GraphQL app (routes, middleware, the
lifespan that opens and closes every connection); `sessions` trades an API key for a
browser session (with CSRF checks); `body_limit` and `outage` answer oversized requests
and missing dependencies before any resolver runs; `health` serves `/healthz`, `/readyz`
and `/metrics`; `request_log` writes one line per request with its request id;
`artifacts` the downloads; `web` the built browser app; `server` runs it all under
uvicorn, in one process or several. It may import the WebSocket transport
(`graphql_app.ws`), the MCP server (`graphql_app.mcp`), `graphql_app.auth`, `schema`,
`tasks` and `persistence`, never the CLI.
"""
