"""The terminal: the `aitasks` command and what stands behind it.

`commands` holds the click commands; `terminal` is the GraphQL client they use against a
running API (`gql` over HTTP and WebSocket) and `live` draws a task as it streams;
`keys` manages API keys in the database; `supervisor` is `aitasks run`, which starts the
embedded servers (`embedded`), the API and the workers and records where they are
(`devstack`). This package may import everything below it (the HTTP app, the WebSocket
transport and the MCP server to start them, `schema`, `tasks`, `persistence`); nothing
of ours imports it.
"""

from graphql_app.cli.commands import main

__all__ = ["main"]
