"""The NATS home: tasks shared by several orchestrator daemons on NATS JetStream."""
