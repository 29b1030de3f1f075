"""The cyclic garbage collector, set for a long-running process that handles many small tasks.

CPython collects its youngest generation after 700 more container objects were made than freed. A daemon
with hundreds of tasks in flight always has thousands of young objects alive (messages, updates, futures),
so each such collection finds them still alive and promotes them, the middle generation fills, and in the
end the whole heap (every module, class and protobuf descriptor loaded at start-up) is walked again and
again. Measured on the orchestrator daemon at 256 tasks in flight: 0.9 s of every 8 s went to collections
(about 45 µs a task, full collections of 90 ms each), the caller's and workers' processes alike.

`tune()` freezes what start-up made (it is never garbage: collections skip it from then on) and lets the
youngest generation grow to `YOUNG_THRESHOLD` objects before a collection: objects of tasks that end in
the meantime are freed by their reference counts, never walked. Cyclic garbage still goes: only later, in
a heap that grows by at most that many objects. The `wa` daemons and workers call it once they are set up;
a program embedding the library decides for its own process (`worker_abstraction.collector.tune()`).
"""

from __future__ import annotations

import gc
import os

# Young objects (net) before a collection; WA_GC_THRESHOLD overrides it (0: leave Python's settings alone).
YOUNG_THRESHOLD = 20_000


def tune(young_threshold: int | None = None) -> None:
    """Freeze the objects made so far and collect the youngest generation every `young_threshold` objects.

    Args:
        young_threshold: default `WA_GC_THRESHOLD` if set, else `YOUNG_THRESHOLD`; 0 changes nothing.

    Raises:
        ValueError: WA_GC_THRESHOLD is set to something that is not a whole number >= 0.
    """
    if young_threshold is None:
        text = os.environ.get("WA_GC_THRESHOLD", "").strip()
        try:
            young_threshold = int(text) if text else YOUNG_THRESHOLD
        except ValueError:
            young_threshold = -1
        if young_threshold < 0:
            raise ValueError(f"WA_GC_THRESHOLD must be a whole number >= 0 (0: Python's default), got {text[:20]!r}")
    if young_threshold == 0:
        return
    gc.collect()  # what start-up left as garbage goes now, not frozen with the rest
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
