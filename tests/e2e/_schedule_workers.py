"""A worker for schedules' runs: each run appends `TASK_ID ATTEMPT PID` to a ledger file (`ledger`: a path the
test chooses), so the test sees every time an occurrence ran, across processes."""

from __future__ import annotations

import os

from worker_abstraction import BaseWorker, TaskContext, capability


class ScheduleWorker(BaseWorker):
    max_concurrent_tasks = 16

    @capability
    def tick(self, ledger: str, ctx: TaskContext) -> str:
        """Note this run in the ledger; returns the task's id (a plain `def`: it runs in a thread)."""
        with open(ledger, "a") as file:  # (one short append per run: atomic on a local file)
            file.write(f"{ctx.task_id} {ctx.attempt} {os.getpid()}\n")
        return ctx.task_id
