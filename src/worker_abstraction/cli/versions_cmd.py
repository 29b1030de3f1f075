"""See a daemon's capability versions and split their tasks between versions (canaries).

  wa versions list [--json]               each capability's live versions (how many workers serve each,
                                          deprecated ones marked) and its split
  wa versions split CAPABILITY RANGE=WEIGHT ...
                                          split the capability's tasks by weight, e.g. 1.0.0=90 2.0.0=10
                                          (operators only, when the daemon checks credentials)
  wa versions clear CAPABILITY            no split: its tasks go to any version their range allows

A split holds until the daemon restarts (each daemon of a shared home holds its own). A caller asks for a
range with `wa submit summarize@^2` (or TaskOptions.version); within it, the split chooses.

exit codes: 0 done; 1 the daemon cannot be reached or refused the call; 2 a split that does not parse.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import TYPE_CHECKING

from worker_abstraction.cli import actions_of, unreachable
from worker_abstraction.cli.config import Settings
from worker_abstraction.errors import InvalidParametersError, OrchestratorUnavailableError, WorkerAbstractionError

if TYPE_CHECKING:
    from worker_abstraction.types import WorkerInfo

NAME = "versions"
SUMMARY = "see capability versions and split tasks between them (canaries)"
DEFAULT_LOG_LEVEL = "WARNING"
EPILOG = """\
examples:
  wa versions list
  wa versions split summarize 1.0.0=90 2.0.0=10
  wa versions clear summarize
"""
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    action = actions_of(parser, settings)
    listing = action("list", "capability versions and splits", "List each capability's live versions and split.")
    listing.add_argument("--json", action="store_true", help="print {capability: {versions: {...}, split: {...}}}")
    splitting = action("split", "split a capability's tasks between versions", "Split a capability's tasks by weight.")
    splitting.add_argument("capability", metavar="CAPABILITY")
    splitting.add_argument("weights", nargs="+", metavar="RANGE=WEIGHT", help="e.g. 1.0.0=90 ^2=10")
    clearing = action("clear", "remove a capability's split", "Remove a capability's split.")
    clearing.add_argument("capability", metavar="CAPABILITY")


def weights_of(texts: list[str]) -> dict[str, int]:
    """`["1.0.0=90", "^2=10"]` -> {"1.0.0": 90, "^2": 10}.

    Raises:
        InvalidParametersError: an entry that is not RANGE=WEIGHT with an integer weight (all listed).
    """
    weights: dict[str, int] = {}
    problems = []
    for text in texts:
        wanted, sep, weight = text.rpartition("=")
        if not sep or not wanted.strip() or not weight.strip().isdigit():
            problems.append(f"{text[:40]!r} is not RANGE=WEIGHT (e.g. 2.0.0=10)")
            continue
        weights[wanted.strip()] = int(weight)
    if problems:
        raise InvalidParametersError(problems)
    return weights


async def run(args: argparse.Namespace) -> int:
    from worker_abstraction.cli.tls import tls_of
    from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator

    try:
        weights = weights_of(args.weights) if args.action == "split" else {}
        async with RemoteOrchestrator(args.orchestrator, tls=tls_of(args)) as remote:
            if args.action in ("split", "clear"):
                splits = await remote.set_version_split(args.capability, weights)
            else:
                splits = await remote.version_splits()
            workers = await remote.workers()
    except OrchestratorUnavailableError as error:
        print(unreachable(error, args.orchestrator), file=sys.stderr)
        return EXIT_FAILED
    except InvalidParametersError as error:
        print(f"not set: {'; '.join(error.problems)}", file=sys.stderr)
        return EXIT_INVALID
    except WorkerAbstractionError as error:
        print(f"refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    table = versions_of(workers, splits)
    if getattr(args, "json", False):
        print(json.dumps(table, indent=2, sort_keys=True))
    else:
        print(render(table))
    return EXIT_OK


def versions_of(workers: list[WorkerInfo], splits: dict[str, dict[str, int]]) -> dict[str, dict[str, object]]:
    """Per capability: its versions (workers serving each, deprecated or not) and its split."""
    served: dict[str, dict[str, dict[str, object]]] = defaultdict(dict)
    for worker in workers:
        for capability in worker.capabilities:
            entry = served[capability.name].setdefault(capability.semver, {"workers": 0, "deprecated": ""})
            entry["workers"] = int(str(entry["workers"])) + 1
            if capability.deprecated:
                entry["deprecated"] = capability.deprecated
    names = sorted(set(served) | set(splits))
    return {name: {"versions": served.get(name, {}), "split": splits.get(name, {})} for name in names}


def render(table: dict[str, dict[str, object]]) -> str:
    if not table:
        return "no capabilities"
    lines = []
    for name, entry in table.items():
        versions = entry["versions"]
        assert isinstance(versions, dict)
        shown = []
        for version, served in sorted(versions.items()):
            note = f", deprecated: {served['deprecated']}" if served["deprecated"] else ""
            shown.append(f"{version} ({served['workers']} worker{'s' if served['workers'] != 1 else ''}{note})")
        split = entry["split"]
        assert isinstance(split, dict)
        weights = " ".join(f"{r}={w}" for r, w in sorted(split.items()))
        lines.append(f"{name}: {', '.join(shown) or 'no live worker'}" + (f"; split {weights}" if weights else ""))
    return "\n".join(lines)
