"""List the live workers the registry knows: id, name, address, capabilities, load, last heartbeat, state.

The state is ACTIVE, or SUSPECT with its reason (e.g. `SUSPECT (no heartbeat for 1.4s)`) for a worker
that stopped heartbeating but is not evicted yet.

With --json, print a JSON list instead, one object per worker with the keys worker_id, name, version,
address, tags, capabilities (name, version, deprecated, stateless, description, parameters: name, type,
description, required),
current_load, last_heartbeat (ISO 8601, or null), state ("ACTIVE" or "SUSPECT") and state_reason
(empty when ACTIVE). Exits 1 when the registry cannot be reached.

With --orchestrator, the workers are those an orchestrator daemon knows, as it sees them: a worker it
cannot reach or that went silent on a task is SUSPECT there even while its heartbeats arrive; two more
columns show its circuit breaker (closed, open, half-open) and the daemon's tasks in flight on it (JSON
keys "circuit" and "in_flight").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from worker_abstraction.cli import add_registry_argument, cannot_reach, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import OrchestratorUnavailableError, PermissionDeniedError, RegistryUnavailableError
from worker_abstraction.types import CapabilitySpec, WorkerHealth, WorkerInfo

NAME = "workers"
SUMMARY = "list the live workers"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa workers --registry 127.0.0.1:50051
  wa workers --json | jq '.[].address'
  wa workers --orchestrator 127.0.0.1:50052
"""

# STATE last: a SUSPECT worker's reason is the one cell of unbounded width.
_COLUMNS = ("ID", "NAME", "ADDRESS", "CAPABILITIES", "LOAD", "LAST HEARTBEAT", "STATE")


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    add_registry_argument(parser, settings)
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument(
        "--orchestrator",
        metavar="HOST:PORT",
        default=None,
        help="ask this orchestrator daemon instead: its view of each worker, circuit breaker and tasks in flight",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=5.0,
        help="seconds to wait for the registry's answer",
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def worker_to_json(worker: WorkerInfo) -> dict[str, Any]:
    """The `--json` form of one worker."""
    return {
        "worker_id": worker.worker_id,
        "name": worker.name,
        "version": worker.version,
        "address": worker.address,
        "tags": list(worker.tags),
        "capabilities": [
            {
                "name": cap.name,
                "version": cap.semver,
                "deprecated": cap.deprecated,
                "stateless": cap.stateless,
                "description": cap.description,
                "parameters": [
                    {"name": p.name, "type": p.type, "description": p.description, "required": p.required}
                    for p in cap.parameters
                ],
            }
            for cap in worker.capabilities
        ],
        "current_load": worker.current_load,
        "last_heartbeat": _aware(worker.last_heartbeat).isoformat() if worker.last_heartbeat else None,
        "state": worker.state.name,
        "state_reason": worker.state_reason,
    }


def capability_label(capability: CapabilitySpec) -> str:
    """A capability as the table shows it: its name, `@version` when it declares one, `(deprecated)`."""
    label = f"{capability.name}@{capability.version}" if capability.version else capability.name
    return f"{label}(deprecated)" if capability.deprecated else label


def state(worker: WorkerInfo) -> str:
    """The STATE cell: the state's name, with the reason when there is one."""
    return f"{worker.state.name} ({worker.state_reason})" if worker.state_reason else worker.state.name


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago `moment` was, e.g. `1.2s ago`, `3m04s ago`, `2h05m ago`; `-` when unknown."""
    if moment is None:
        return "-"
    seconds = max(0.0, (now - _aware(moment)).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s ago"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m ago"


def render_table(workers: list[WorkerInfo], now: datetime, health: dict[str, WorkerHealth] | None = None) -> str:
    """The workers as an aligned text table with a header row (with an orchestrator's view, if given)."""
    header: tuple[str, ...] = _COLUMNS if health is None else (*_COLUMNS[:-1], "CIRCUIT", "IN FLIGHT", "STATE")
    rows = [header] + [
        (
            w.worker_id,
            w.name,
            w.address,
            ",".join(capability_label(c) for c in w.capabilities) or "-",
            str(w.current_load),
            age(w.last_heartbeat, now),
            *(() if health is None else (health[w.worker_id].circuit, str(health[w.worker_id].in_flight))),
            state(w),
        )
        for w in workers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


async def run(args: argparse.Namespace) -> int:
    """Fetch the workers and print them; return 1 when the registry (or orchestrator) is unreachable."""
    if args.orchestrator:
        return await _run_orchestrator(args)
    from worker_abstraction.registry.client import RegistryClient

    client = RegistryClient(args.registry, tls=tls_of(args))
    try:
        async with asyncio.timeout(args.timeout):
            workers = await client.list_workers()
    except PermissionDeniedError:
        raise  # refused, not unreachable: `wa` says so (exit 2)
    except RegistryUnavailableError as exc:
        print(unreachable(exc, args.registry), file=sys.stderr)
        return 1
    except TimeoutError:
        print(cannot_reach("registry", args.registry, f"no answer within {args.timeout:g}s"), file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    workers.sort(key=lambda w: (w.name, w.worker_id))
    if args.json:
        print(json.dumps([worker_to_json(w) for w in workers], indent=2))
    else:
        print(render_table(workers, datetime.now(UTC)))
    return 0


async def _run_orchestrator(args: argparse.Namespace) -> int:
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    try:
        async with RemoteOrchestrator(args.orchestrator, tls=tls_of(args)) as remote, asyncio.timeout(args.timeout):
            found = await remote.worker_health()
    except OrchestratorUnavailableError as exc:
        print(unreachable(exc, args.orchestrator), file=sys.stderr)
        return 1
    except TimeoutError:
        print(cannot_reach("orchestrator", args.orchestrator, f"no answer within {args.timeout:g}s"), file=sys.stderr)
        return 1
    # The orchestrator's view of the standing replaces the registry's.
    workers = sorted(
        (replace(h.worker, state=h.state, state_reason=h.state_reason) for h in found),
        key=lambda w: (w.name, w.worker_id),
    )
    health = {h.worker.worker_id: h for h in found}
    if args.json:
        documents = [
            {**worker_to_json(w), "circuit": health[w.worker_id].circuit, "in_flight": health[w.worker_id].in_flight}
            for w in workers
        ]
        print(json.dumps(documents, indent=2))
    else:
        print(render_table(workers, datetime.now(UTC), health))
    return 0
