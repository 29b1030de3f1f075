"""gRPC's polling, chosen once, before gRPC loads (importing this module does it).

Since 1.7x, grpcio reads and writes sockets on EventEngine threads of its own and hands each event to the
asyncio poller thread, which hands it to the event loop: about thirteen thread switches per round trip on
a bidirectional stream, measured on one machine. With the `event_engine_client` and `event_engine_listener`
experiments off, gRPC polls the sockets from the poller thread itself, as grpcio did for years: about
four switches, and about a quarter less CPU per message. Every message of a task passes through here several
times, so the `wa` processes, and programs that import this package before gRPC, use that polling.

Left alone when the environment already sets `GRPC_EXPERIMENTS` (an empty value keeps gRPC's default),
or when gRPC was imported first (its experiments are fixed when it loads). The variable is set only while
gRPC loads: processes this one starts choose for themselves.
"""

from __future__ import annotations

import os
import sys

THREAD_LIGHT = "-event_engine_client,-event_engine_listener"
VARIABLE = "GRPC_EXPERIMENTS"


def _choose() -> None:
    if "grpc" in sys.modules or VARIABLE in os.environ:
        return
    os.environ[VARIABLE] = THREAD_LIGHT
    try:
        import grpc  # noqa: F401  (reads the experiments now)
    finally:
        del os.environ[VARIABLE]


_choose()
