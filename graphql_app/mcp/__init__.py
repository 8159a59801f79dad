"""The MCP server: tasks as tools for AI agents, at `/mcp` in the API process (streamable
HTTP) or over stdio (`aitasks mcp`). Its tools call the same services as the GraphQL
resolvers. It may import `schema`, `tasks` and `persistence`; the HTTP app mounts it and
the CLI starts it; it imports neither.
"""
