"""One module per scenario group: the gRPC floor, tasks through the orchestrator, the registry under load."""
