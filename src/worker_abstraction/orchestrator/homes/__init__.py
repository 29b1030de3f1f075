"""Where tasks live: each home implements `core.home.TaskHome` (it stores what is accepted, owns idempotency,
hands the engine the tasks it should run as holds, and answers reads, cancels and dead letters). `local`
keeps them in this process (in memory or SQLite); `nats` shares them between daemons on NATS JetStream."""
