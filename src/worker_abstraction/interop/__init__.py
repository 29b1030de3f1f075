"""Other agent protocols joining the team: MCP (`wa mcp`, McpWorker) and A2A (the agent card and A2A tasks
beside the dashboard, A2AWorker). Each module loads its protocol's SDK only when used."""
