"""What a worker reports about its load with each heartbeat."""

from __future__ import annotations

import os
import time

from worker_abstraction.types import LoadReport

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MACHINE_BYTES = _PAGE * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0


class LoadMeter:
    """Builds load reports: slots from the task table, CPU and memory from the process itself."""

    def __init__(self) -> None:
        self._last_wall = time.monotonic()
        self._last_cpu = time.process_time()

    def report(self, *, active: int, max_concurrent_tasks: int) -> LoadReport:
        wall, cpu = time.monotonic(), time.process_time()
        elapsed = wall - self._last_wall
        cores = (cpu - self._last_cpu) / elapsed if elapsed > 0 else 0.0
        self._last_wall, self._last_cpu = wall, cpu
        return LoadReport(
            free_slots=max(0, max_concurrent_tasks - active) if max_concurrent_tasks else -1,
            queued=0,  # accepted tasks start at once; the worker keeps no queue of its own
            cpu_utilization=round(cores, 3),
            mem_utilization=round(_resident_bytes() / _MACHINE_BYTES, 4) if _MACHINE_BYTES else 0.0,
        )


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):  # not Linux: report no memory figure
        return 0
