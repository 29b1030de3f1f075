"""Version splits: a capability's tasks shared between its versions by weight (canaries).

An operator sets a split per capability (`wa versions split summarize 1.0.0=90 2.0.0=10`, or
`set_version_split`): each key a version range, each value its weight. As the scheduler places a task of the
capability, the ranges that its usable workers (live, fitting, in good standing; busy or not) satisfy share
it out in proportion to their weights, by smooth weighted round robin: over any run of tasks each range gets
its share to within one task, not merely on average, whatever the load. A task whose range's workers are all
busy waits for one of them (the split holds under load, as a canary's share should); a range no usable worker
satisfies takes no turn (its workers gone, suspect or their circuit open: its share goes to the others); a
version in no range gets no task while some range has a worker. A capability with no split, or whose ranges
no usable worker satisfies, goes to any version.

The split is the orchestrator's own setting, in memory: a daemon starts with those its `--version-split`
flags give, and each daemon of a shared home holds its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from worker_abstraction.codec import short
from worker_abstraction.errors import InvalidRequestError
from worker_abstraction.types import WorkerInfo
from worker_abstraction.versions import VersionError, VersionRange

MAX_SPLIT_ENTRIES = 16
MAX_SPLITS = 1024
MAX_WEIGHT = 1_000_000


class VersionSplits:
    """The version splits of one orchestrator, and the turns they have given so far."""

    def __init__(self) -> None:
        self._splits: dict[str, tuple[tuple[VersionRange, int], ...]] = {}
        self._credit: dict[tuple[str, str], int] = {}  # (capability, range) -> its running credit

    def __contains__(self, capability: str) -> bool:
        return capability in self._splits

    def all(self) -> dict[str, dict[str, int]]:
        """Every split: capability -> {range: weight}."""
        return {capability: {str(r.text): w for r, w in entries} for capability, entries in self._splits.items()}

    def set(self, capability: str, weights: Mapping[str, int]) -> None:
        """Split the capability's tasks by these weights (empty: no split any more).

        Raises:
            InvalidRequestError: a range that does not parse, a weight out of range, or too many entries
                (every problem listed).
        """
        problems = split_problems(capability, weights)
        if not problems and capability not in self._splits and weights and len(self._splits) >= MAX_SPLITS:
            problems.append(f"an orchestrator holds at most {MAX_SPLITS} splits; remove one first")
        if problems:
            raise InvalidRequestError(problems)
        for key in [k for k in self._credit if k[0] == capability]:
            del self._credit[key]
        if not weights:
            self._splits.pop(capability, None)
            return
        self._splits[capability] = tuple((VersionRange.parse(text), int(w)) for text, w in sorted(weights.items()))

    def turn(self, capability: str, usable: Sequence[WorkerInfo]) -> Turn | None:
        """Whose turn it is among the ranges that `usable` workers (live, fitting, in good standing, full or
        not) satisfy, without taking it (None: no split applies). The scheduler `take`s it once the task is
        placed on one of its `members`; until then every look gives the same turn, so a task due to a version
        whose workers are all busy waits for one of them rather than going to another version."""
        entries = self._splits.get(capability)
        if not entries:
            return None
        present: list[tuple[str, int, frozenset[str]]] = []
        for wanted, weight in entries:
            members = frozenset(w.worker_id for w in usable if _allows(wanted, w, capability))
            if members and weight > 0:
                present.append((wanted.text, weight, members))
        if not present:
            return None
        best = max(present, key=lambda p: self._credit.get((capability, p[0]), 0) + p[1])  # (ties: the first)
        return Turn(best[0], best[2], tuple((text, weight) for text, weight, _ in present))

    def take(self, capability: str, turn: Turn) -> None:
        """The task of `turn` was placed: each present range gains its weight, the chosen one gives the total
        back (smooth weighted round robin)."""
        total = 0
        for text, weight in turn.weights:
            self._credit[(capability, text)] = self._credit.get((capability, text), 0) + weight
            total += weight
        self._credit[(capability, turn.chosen)] -= total


@dataclass(frozen=True, slots=True)
class Turn:
    """A version range's turn: its text, the usable workers of a version in it, and every range present."""

    chosen: str
    members: frozenset[str]
    weights: tuple[tuple[str, int], ...]


def _allows(wanted: VersionRange, worker: WorkerInfo, capability: str) -> bool:
    spec = worker.capability(capability)
    return spec is not None and wanted.allows(spec.semver)


def split_problems(capability: str, weights: Mapping[str, int]) -> list[str]:
    """Everything wrong with a split (empty: it can be set)."""
    problems: list[str] = []
    if not 1 <= len(capability) <= 256 or not capability.isprintable():
        problems.append(f"capability must name a capability (1-256 printable characters), got {short(capability)}")
    if len(weights) > MAX_SPLIT_ENTRIES:
        problems.append(f"a split has at most {MAX_SPLIT_ENTRIES} versions, got {len(weights)}")
        return problems
    for text, weight in weights.items():
        try:
            VersionRange.parse(text)
        except VersionError as error:
            problems.append(str(error))
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= MAX_WEIGHT:
            problems.append(f"weight of {short(text)} must be an integer 0..{MAX_WEIGHT}, got {short(weight)}")
    if weights and not problems and not any(weights.values()):
        problems.append("at least one weight must be above 0 (to remove the split, give no weights)")
    return problems
