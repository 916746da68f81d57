"""HPCMind over MCP: `server` (tools, resources, prompt), `transports` (streamable HTTP at /mcp, stdio),
`promql` (bounded read-only queries), `health` (node and job reports), `bench` (tool-list cost)."""
