"""What a NATS task document says to readers: its task's record, and whether it matches a query."""

from __future__ import annotations

from worker_abstraction.orchestrator.core.state import task_record
from worker_abstraction.stores import serial
from worker_abstraction.stores.jetstream.tasks import DISPATCHED, TaskDoc
from worker_abstraction.types import TaskQuery, TaskRecord, TaskStatus


def record_of(doc: TaskDoc) -> TaskRecord:
    """A shared task's record: as it ended, or as its document stands (PENDING, or RUNNING once sent)."""
    if doc.finished and doc.record:
        return serial.record_of(doc.record)
    spec = serial.spec_of(doc.request)
    return task_record(spec, TaskStatus(status_of(doc)), cancel_reason=doc.cancel_reason)


def matches(query: TaskQuery, doc: TaskDoc) -> bool:
    """`query.matches` on a document's own fields, without decoding its record (accepted_at is the task's
    creation time; worker_id the worker it was last sent to, which is its latest attempt's once finished)."""
    since, until = query.since_seconds, query.until_seconds
    return (
        (not query.statuses or status_of(doc) in query.statuses)
        and (not query.capability or doc.capability == query.capability)
        and (query.owner is None or doc.owner == query.owner)
        and (not query.worker_id or doc.worker_id == query.worker_id)
        and (not query.task_id_prefix or doc.task_id.startswith(query.task_id_prefix))
        and (since is None or doc.accepted_at >= since)
        and (until is None or doc.accepted_at < until)
    )


def status_of(doc: TaskDoc) -> int:
    """The TaskStatus a document stands for: its end once finished, else RUNNING once sent, else PENDING."""
    if doc.finished:
        return doc.status
    return int(TaskStatus.RUNNING if doc.state == DISPATCHED else TaskStatus.PENDING)
