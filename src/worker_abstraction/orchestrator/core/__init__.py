"""The engine core: accepting tasks, running each one (`TaskRun`) to its one end, scheduling, retries,
circuits. No gRPC and no storage of its own: workers are reached through `edge`, tasks live in a `homes`."""
