"""An orchestrator process holding many queued tasks, for scenario 5 (its RSS is read by the bench).

    python -m bench.queued --registry ADDR --tasks 100000

One AsyncOrchestrator; the only worker offering the capabilities has one slot, which a long sleeping
task takes first, so every no-op task submitted afterwards waits in the orchestrator's queue. The
handles are kept, as a caller would keep them. Progress goes to stdout as JSON lines:

    {"event": "ready"}                      the slot is taken, nothing queued yet
    {"event": "queued", "tasks": ..., "seconds": ..., "errors": {...}}

then the process waits to be stopped (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

from bench.loops import run
from worker_abstraction import AsyncOrchestrator, AsyncTaskHandle, TaskStatus

HOLD_SLOT_MS = 3_600_000


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def fill(args: argparse.Namespace) -> None:
    async with AsyncOrchestrator(args.registry, max_queued=args.tasks + 10) as orch:
        await orch.wait_for_workers("noop", count=1, timeout_seconds=30)
        # No deadline: the slot must stay taken for as long as the measurement lasts.
        blocker = await orch.execute_task("sleep_ms", {"ms": HOLD_SLOT_MS}, timeout_seconds=0)
        async with asyncio.timeout(30):
            async for update in blocker:
                if update.status is TaskStatus.RUNNING:
                    break
        emit("ready")
        handles: list[AsyncTaskHandle] = []
        errors: Counter[str] = Counter()
        start = time.perf_counter()
        for _ in range(args.tasks):
            try:
                handles.append(await orch.execute_task("noop", {}))
            except Exception as error:
                errors[type(error).__name__] += 1
        seconds = time.perf_counter() - start
        waiting = sum(1 for h in handles if h.status is TaskStatus.PENDING and not h.worker_id)
        emit("queued", tasks=len(handles), waiting=waiting, seconds=seconds, errors=dict(errors))
        await asyncio.Event().wait()  # until SIGTERM ends the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", required=True, metavar="HOST:PORT")
    parser.add_argument("--tasks", type=int, default=100_000)
    run(fill(parser.parse_args()))


if __name__ == "__main__":
    main()
