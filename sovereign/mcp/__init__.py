"""The MCP data server: read-only tools over the owner's knowledge, on the official `mcp` SDK
(streamable HTTP), behind the kit's Host/Origin door and a bearer key, its tool
definitions pinned (docs/mcp.md)."""
