"""A TracerProvider exporting to memory, installed for one test and removed after it (shared by the tracing
tests in-process and across processes)."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


def _install(provider: TracerProvider | None) -> None:
    # OpenTelemetry lets a process set its provider once; its own test helpers reset these two globals the
    # same way, so each test starts with tracing off (or on) as it chooses.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)


def traced() -> Iterator[InMemorySpanExporter]:
    """Tracing on while iterating: every finished span lands in the yielded exporter; off again after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _install(provider)
    try:
        yield exporter
    finally:
        _install(None)
        provider.shutdown()


def named(found: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in found if span.name == name]
