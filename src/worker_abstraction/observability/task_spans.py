"""The spans of one task's run on the orchestrator: queue waits, attempts and their dispatches.

A `TaskRun` makes one `RunSpans` when tracing is on (none when it is off) and tells it where the task is;
every span hangs under the submission's context (`TaskSpec.trace_context`), so the caller's trace goes on.
Each attempt span links to the attempt before it, so a retry shows what it retries.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from worker_abstraction.observability import tracing
from worker_abstraction.observability.tracing import TraceContext


class RunSpans:
    """The open spans of one task run; every method is safe to call in any phase."""

    __slots__ = ("_attempt", "_dispatch", "_input", "_parent", "_previous", "_queue", "task_id", "trace_id")

    def __init__(self, task_id: str, capability: str, trace_context: TraceContext) -> None:
        self.task_id = task_id
        parent = tracing.parent_of(trace_context)
        if parent is None:  # nobody upstream traces: the run is a trace of its own, under one root span
            root = tracing.tracer().start_span(
                "task", kind=SpanKind.INTERNAL, attributes={"wa.task_id": task_id, "wa.capability": capability}
            )
            root.end()
            parent = trace.set_span_in_context(root)
        self._parent = parent
        self.trace_id = tracing.trace_id(trace.get_current_span(parent))
        self._queue: Span | None = None
        self._attempt: Span | None = None
        self._dispatch: Span | None = None
        self._previous: Span | None = None
        self._input: Span | None = None

    def input_wait(self, request_id: str) -> None:
        """The handler asked for input: an "input wait" span under the attempt, until it goes on."""
        self._end_input()
        context = trace.set_span_in_context(self._attempt) if self._attempt is not None else self._parent
        self._input = tracing.tracer().start_span(
            "input wait", context=context, attributes={"wa.task_id": self.task_id, "wa.request_id": request_id}
        )

    def input_ended(self, answered_by: str | None) -> None:
        """The handler goes on: answered (by `answered_by`), or it stopped waiting (None)."""
        span = self._input
        if span is not None:
            span.set_attribute("wa.answered", answered_by is not None)
            if answered_by:
                span.set_attribute("wa.answered_by", answered_by)
        self._end_input()

    def _end_input(self) -> None:
        span, self._input = self._input, None
        if span is not None:
            span.end()

    def waiting(self) -> None:
        """The task waits in the queue (accepted, retried, or back from a worker that could not take it)."""
        if self._queue is None:
            self._queue = tracing.tracer().start_span(
                "queue wait", context=self._parent, attributes={"wa.task_id": self.task_id}
            )

    def placed(self, attempt: int, worker_id: str) -> TraceContext:
        """A worker was chosen: the wait ends, an attempt and its dispatch begin. Returns the context the
        worker's handler continues."""
        self._end_queue()
        self._end_attempt(None)
        links = [Link(self._previous.get_span_context())] if self._previous is not None else None
        attempt_span = tracing.tracer().start_span(
            "attempt",
            context=self._parent,
            links=links,
            attributes={"wa.task_id": self.task_id, "wa.attempt": attempt, "wa.worker_id": worker_id},
        )
        self._attempt = attempt_span
        self._dispatch = tracing.tracer().start_span(
            "dispatch",
            context=trace.set_span_in_context(attempt_span),
            kind=SpanKind.CLIENT,
            attributes={"wa.task_id": self.task_id, "wa.worker_id": worker_id},
        )
        return tracing.context_of(attempt_span)

    def resumed(self, attempt: int, worker_id: str) -> None:
        """After a restart: the attempt already runs on `worker_id` (its handler continues the old context)."""
        self._attempt = tracing.tracer().start_span(
            "attempt",
            context=self._parent,
            attributes={"wa.task_id": self.task_id, "wa.attempt": attempt, "wa.worker_id": worker_id,
                        "wa.resumed": True},
        )  # fmt: skip

    def answered(self, answer: str, error: str | None = None) -> None:
        """The worker answered the dispatch (accepted, busy, rejected, unreachable)."""
        span, self._dispatch = self._dispatch, None
        if span is not None:
            span.set_attribute("wa.dispatch.answer", answer)
            tracing.end(span, error)

    def attempt_ended(self, reason: str | None, *, answer: str = "failed") -> None:
        """The current attempt ended without the task ending: it failed (`reason`), or the worker had no room
        (None) and the task goes back to the queue."""
        self.answered(answer, reason)
        self._end_attempt(reason)

    def finished(self, status: str, error: str | None) -> None:
        """The task ended: every open span ends, the attempt's with the task's outcome."""
        self.answered("ended", error)
        self._end_input()
        self._end_queue()
        attempt = self._attempt
        if attempt is not None:
            attempt.set_attribute("wa.status", status)
        self._end_attempt(error)
        self._previous = None

    def _end_queue(self) -> None:
        span, self._queue = self._queue, None
        if span is not None:
            span.end()

    def _end_attempt(self, error: str | None) -> None:
        span, self._attempt = self._attempt, None
        if span is not None:
            tracing.end(span, error)
            self._previous = span
