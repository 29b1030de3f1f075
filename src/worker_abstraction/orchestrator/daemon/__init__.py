"""The orchestrator daemon: its gRPC server, the servicer of OrchestratorService and the submission sessions."""
