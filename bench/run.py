"""Run the benchmark suite: `make bench` (full, a few minutes) or `make bench-quick` (under 2 minutes).

Prints one table and writes the same figures to bench/results/latest.json; see bench/README.md.
Exits 1 when a scenario failed (its figures are null), 0 otherwise; the figures are never judged here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

# Run as `python bench/run.py`: make the repo root importable, so `bench` is the package it is in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# This process starts children after gRPC has threads; gRPC's fork handlers are not needed (the children
# exec at once) and only log "skipping fork() handlers". Must be set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from bench import report
from bench.config import FULL, QUICK, TINY
from bench.loops import run
from bench.procs import kill_leftovers
from bench.suite import run_suite

RESULTS = Path(__file__).resolve().parent / "results"


async def _main(args: argparse.Namespace) -> int:
    # SIGTERM (a CI timeout, say) cancels like Ctrl-C does, so every child process is stopped.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    config = TINY if args.tiny else QUICK if args.quick else FULL
    doc = await run_suite(config, args.log_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(report.table(doc))
    print(f"wrote {args.out}")
    return 1 if doc["failures"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller counts and shorter windows, same keys")
    size.add_argument("--tiny", action="store_true", help="seconds-long smoke run; its figures mean nothing")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where to write the JSON")
    parser.add_argument("--log-dir", type=Path, default=RESULTS / "logs", help="child processes' stderr logs")
    args = parser.parse_args()
    try:
        return run(_main(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        kill_leftovers()


if __name__ == "__main__":
    sys.exit(main())
