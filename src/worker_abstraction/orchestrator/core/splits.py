"""Version splits: a capability's tasks shared between its versions by weight (canaries).

An operator sets a split per capability (`wa versions split summarize 1.0.0=90 2.0.0=10`, or
`set_version_split`): each key a version range, each value its weight. As the scheduler places a task of the
capability, the ranges that the task's candidate workers (live, fitting, with room) satisfy share it out in
proportion to their weights, by smooth weighted round robin: over any run of tasks each range gets its share
to within one task, not merely on average. A range no candidate satisfies takes no turn (its share goes to
the others while its workers are full or gone); a version in no range gets no task while some range has a
candidate. A capability with no split, or whose ranges no candidate satisfies, goes to any version.

The split is the orchestrator's own setting, in memory: a daemon starts with those its `--version-split`
flags give, and each daemon of a shared home holds its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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

    def choose(self, capability: str, candidates: Sequence[WorkerInfo]) -> Sequence[WorkerInfo]:
        """The candidates of the version whose turn it is (all of them when no split applies)."""
        entries = self._splits.get(capability)
        if not entries:
            return candidates
        groups: list[tuple[str, int, list[WorkerInfo]]] = []
        for wanted, weight in entries:
            group = [w for w in candidates if _allows(wanted, w, capability)]
            if group and weight > 0:
                groups.append((wanted.text, weight, group))
        if not groups:
            return candidates
        total = sum(weight for _, weight, _ in groups)
        best: tuple[str, int, list[WorkerInfo]] | None = None
        best_credit = 0
        for text, weight, group in groups:
            credit = self._credit.get((capability, text), 0) + weight
            self._credit[(capability, text)] = credit
            if best is None or credit > best_credit:
                best, best_credit = (text, weight, group), credit
        assert best is not None
        self._credit[(capability, best[0])] = best_credit - total
        return best[2]


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
