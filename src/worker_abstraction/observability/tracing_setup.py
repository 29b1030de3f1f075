"""The TracerProvider a `wa` process installs from the standard `OTEL_*` variables (the library installs none).

Tracing is on when one of these asks for it, off otherwise (nothing is exported, nothing is recorded):

- `OTEL_TRACES_EXPORTER`: a comma-separated list of `otlp` (OTLP over gRPC), `console` (JSON on stdout) and
  `none`. Unset, it means `otlp` once an OTLP endpoint is set, nothing otherwise.
- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (and the exporter's other standard
  variables: headers, certificates, `..._INSECURE`): read by the OTLP exporter itself.
- `OTEL_SERVICE_NAME` (default `wa-<command>`) and `OTEL_RESOURCE_ATTRIBUTES`: the resource of every span.
- `OTEL_SDK_DISABLED=true` turns it all off.
- `WA_TRACE_FILE=PATH` (ours): also append every span to PATH as one JSON object per line, as it ends; for
  a look without a collector, and for the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TextIO

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

EXPORTERS = ("otlp", "console", "none")
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters `environ` asks for, in order, without `none`.

    Raises:
        ValueError: an exporter name that is not one of `EXPORTERS`.
    """
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        return ["otlp"] if any(environ.get(name) for name in _ENDPOINTS) else []
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ValueError(f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; expected {', '.join(EXPORTERS)}")
    return [name for name in names if name != "none"]


def configure(service_name: str, environ: Mapping[str, str]) -> TracerProvider | None:
    """Install a TracerProvider exporting where `environ` says (see the module docstring); None: tracing is
    off and nothing was installed.

    Raises:
        ValueError: OTEL_TRACES_EXPORTER names an unknown exporter.
    """
    names = exporter_names(environ)
    trace_file = environ.get("WA_TRACE_FILE", "")
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or not (names or trace_file):
        return None
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))  # (merges OTEL_RESOURCE_ATTRIBUTES)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    if trace_file:
        # One span per line, written as it ends: a reader sees it at once, and a killed process loses none.
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
    trace.set_tracer_provider(provider)
    return provider


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span to a file as one line of JSON (the console exporter's JSON, on one line)."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()  # spans end on the loop and on handler threads alike
        self._stream: TextIO | None = open(path, "a", encoding="utf-8")  # noqa: SIM115  # closed by shutdown

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(f"{span.to_json(indent=None)}\n" for span in spans)
        with self._lock:
            if self._stream is None:
                return SpanExportResult.FAILURE
            self._stream.write(lines)
            self._stream.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported only when asked for: it brings grpc channels and the OTLP stubs.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()
