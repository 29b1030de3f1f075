"""Admission: whether a task may be accepted at all, checked before anything is stored or queued.

A task is admitted when some live worker offers its capability and meets its requirements (tags, pin, the
capability's own required tags) and its arguments fit the capability's declared parameters. The errors
say what was asked for and what the live workers offer, so the caller can fix the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker_abstraction.errors import InvalidParametersError, NoWorkerError
from worker_abstraction.orchestrator.core.scheduler import Placeable, Scheduler
from worker_abstraction.orchestrator.edge.discovery import WorkerDirectory
from worker_abstraction.types import TaskSpec, WorkerInfo
from worker_abstraction.validation import parameter_problems
from worker_abstraction.versions import ANY as ANY_VERSION
from worker_abstraction.versions import VersionRange

_NO_TAGS: frozenset[str] = frozenset()


def lowered(tags: tuple[str, ...]) -> frozenset[str]:
    """Tags as the scheduler compares them."""
    return frozenset(t.lower() for t in tags) if tags else _NO_TAGS


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a task asks of a worker, as the scheduler reads it (`Placeable`), before it has a run."""

    capability: str
    required_tags: frozenset[str]
    preferred_tags: frozenset[str]
    pinned: str
    priority: int
    fairness_key: str
    avoid: frozenset[str] = _NO_TAGS
    gate: str = ""
    session_key: str = ""
    versions: VersionRange = ANY_VERSION
    session_until: float = 0.0

    @classmethod
    def of(cls, spec: TaskSpec) -> Wanted:
        options = spec.options
        return cls(
            spec.capability,
            lowered(options.required_tags),
            lowered(options.preferred_tags),
            options.worker_id,
            options.priority,
            options.fairness_key,
            versions=VersionRange.parse(options.version),
        )

    def place(self, worker: WorkerInfo) -> None:
        raise AssertionError("admission never queues a task")

    def deny(self, error: Exception) -> None:
        raise AssertionError("admission never queues a task")

    def cancel_soon(self, reason: str) -> None:
        raise AssertionError("admission never queues a task")


def admit(
    spec: TaskSpec, task: Placeable, directory: WorkerDirectory, scheduler: Scheduler, *, wait_for_workers: bool
) -> None:
    """Raise if the task cannot be accepted.

    With `wait_for_workers`, a task for a capability no live worker offers yet is accepted to wait (its
    arguments are checked by the worker that takes it); otherwise that is NoWorkerError, as the seed has it.

    Raises:
        NoWorkerError: no live worker offers the capability, or none meets the task's requirements.
        InvalidParametersError: the arguments break the capability's declared parameters (all listed).
        PermissionDeniedError: every worker that could run it refuses this orchestrator's credentials.
    """
    capable = directory.capable(spec.capability)
    if not capable and wait_for_workers:
        return
    if not capable:
        raise NoWorkerError(spec.capability, _why_no_worker(directory))
    fitting = [w for w in capable if scheduler.fits(task, w)]
    if not fitting:
        wanted = [f"tags {sorted(task.required_tags)}"] if task.required_tags else []
        wanted += [f"worker {task.pinned!r}"] if task.pinned else []
        wanted += [f"version {task.versions}"] if task.versions.alternatives else []
        offers = "; ".join(
            f"{w.worker_id} {_version_of(w, spec.capability)} tags {sorted(w.tags)}" for w in capable[:20]
        )
        needs = {t for w in capable for c in w.capabilities if c.name == spec.capability for t in c.required_tags}
        if needs:
            wanted.append(f"the capability's own required tags {sorted(needs)}")
        raise NoWorkerError(
            spec.capability,
            f"it needs {' and '.join(wanted)}; live workers offering it: {offers}",
            headline=f"no live worker offering {spec.capability!r} meets the task's requirements",
        )
    refused = scheduler.refused_everywhere(task)
    if refused is not None:
        raise refused
    declared = fitting[0].capability(spec.capability)
    problems = parameter_problems(declared, spec.params) if declared is not None else []
    if problems:
        raise InvalidParametersError(problems)


def _version_of(worker: WorkerInfo, capability: str) -> str:
    spec = worker.capability(capability)
    return f"version {spec.semver}" if spec is not None else ""


def _why_no_worker(directory: WorkerDirectory) -> str:
    if not directory.synced.is_set():
        detail = f"registry {directory.registry} not reached yet"
        return f"{detail}: {directory.last_error}" if directory.last_error else detail
    offered = sorted({c.name for w in directory.workers.values() for c in w.capabilities})
    shown = ", ".join(offered[:50]) + (f", ... ({len(offered) - 50} more)" if len(offered) > 50 else "")
    return "live workers offer: " + (shown or "nothing, none are live")
