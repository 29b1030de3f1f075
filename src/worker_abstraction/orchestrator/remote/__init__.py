"""The client of an orchestrator daemon: `RemoteOrchestrator` and its submission sessions."""
