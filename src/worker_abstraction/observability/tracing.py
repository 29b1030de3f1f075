"""OpenTelemetry tracing: one trace follows a task from its caller through the daemon to the worker's handler.

Spans (all from the tracer named `worker_abstraction`)::

    submit (caller: AsyncOrchestrator / RemoteOrchestrator)
    └── submit (daemon: its handling of the submission)
        ├── queue wait (acceptance, or a retry, until a worker is chosen)
        └── attempt (one per attempt; a retry links to the attempt before it)
            ├── dispatch (handing the task to the worker, until it answers)
            └── handler (worker: around the capability's method)

The context travels with each task, not with each call (a session or a task channel carries many tasks):
as W3C `traceparent` / `tracestate` in the task's `trace_context` field, written and read by OpenTelemetry's
global propagator. A daemon keeps it in its task store, so a restarted one continues the same trace.

Tracing is off until a TracerProvider is installed (`opentelemetry.trace.set_tracer_provider`; the `wa`
processes install one from the `OTEL_*` variables, see `tracing_setup`). Until then `enabled()` is False
and every caller skips its spans altogether, so the hot path pays one check per task.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

TRACER_NAME = "worker_abstraction"
TraceContext = tuple[tuple[str, str], ...]  # ("traceparent", ...), ("tracestate", ...): immutable, hashable
NO_TRACE: TraceContext = ()
# What a carrier from the wire may hold: the W3C fields, each at most as long as the specification allows
# (tracestate: 32 members of at most 256 characters, 512 in practice). Anything else is dropped unread.
_CARRIER_LIMITS = {"traceparent": 128, "tracestate": 512}
_OFF = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER"


_UNKNOWN = object()
if _ENV_PROVIDER in os.environ:  # a provider named in the environment is loaded on first use: now, then
    trace.get_tracer_provider()


def enabled() -> bool:
    """True once a real TracerProvider is installed (spans would be recorded and exported)."""
    # get_tracer_provider() looks the environment up on every call while no provider is set (about 1 us,
    # paid per task in every process); OpenTelemetry's global, only read, costs some 50 ns. A version
    # without that global falls back to the public call.
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:
        provider = trace.get_tracer_provider()
    return provider is not None and not isinstance(provider, _OFF)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def carrier(trace_context: TraceContext | Mapping[str, str]) -> dict[str, str]:
    """The W3C fields of a trace context from the wire, bounded; anything else dropped."""
    items = trace_context.items() if isinstance(trace_context, Mapping) else trace_context
    return {
        key: value
        for key, value in items
        if key in _CARRIER_LIMITS and isinstance(value, str) and len(value) <= _CARRIER_LIMITS[key]
    }


def parent_of(trace_context: TraceContext | Mapping[str, str]) -> otel_context.Context | None:
    """The context a trace context from the wire names (None: it names none, a new trace starts)."""
    fields = carrier(trace_context)
    return propagate.extract(fields) if fields else None


def context_of(span: Span) -> TraceContext:
    """The trace context that makes `span` the parent of whatever continues it elsewhere."""
    fields: dict[str, str] = {}
    propagate.inject(fields, context=trace.set_span_in_context(span))
    return tuple(sorted(fields.items()))


def trace_id(span: Span) -> str:
    """The span's trace id as the logs show it (32 hex digits)."""
    return trace.format_trace_id(span.get_span_context().trace_id)


def current_trace_id() -> str | None:
    """The trace id of the span current here, if one is recording (for log lines)."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


@contextlib.contextmanager
def submit_span(capability: str, *, kind: SpanKind, parent: TraceContext = NO_TRACE) -> Iterator[Span]:
    """The span of one submission (the caller's: CLIENT, or the daemon's: SERVER under the caller's context).

    An exception leaving the block marks the span as an error and is recorded on it.
    """
    with tracer().start_as_current_span(
        "submit",
        context=parent_of(parent) if parent else None,
        kind=kind,
        attributes={"wa.capability": capability},
    ) as span:
        yield span


def started_submit_span(capability: str, *, kind: SpanKind, parent: TraceContext = NO_TRACE) -> Span:
    """`submit_span`, started but not made current: for a submission whose end is heard by a callback (end
    it with `end`)."""
    return tracer().start_span(
        "submit",
        context=parent_of(parent) if parent else None,
        kind=kind,
        attributes={"wa.capability": capability},
    )


def handler_span(task_id: str, capability: str, worker_id: str, attempt: int, trace_context: Mapping[str, str]) -> Span:
    """The worker's span around one task's handler, a child of the attempt that sent it (started, not current)."""
    return tracer().start_span(
        "handler",
        context=parent_of(trace_context),
        kind=SpanKind.SERVER,
        attributes={
            "wa.task_id": task_id,
            "wa.capability": capability,
            "wa.worker_id": worker_id,
            "wa.attempt": max(attempt, 1),
        },
    )


def end(span: Span, error: str | None = None) -> None:
    """End `span`, marked as an error with this description when one is given."""
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()
