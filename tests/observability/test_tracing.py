"""OpenTelemetry spans of a task, exported to memory: one trace from the caller through the daemon to the worker."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import eventually
from tests.tracing import named
from worker_abstraction import (
    AsyncOrchestrator,
    BaseWorker,
    OrchestratorServer,
    RegistryServer,
    RemoteOrchestrator,
    RetryPolicy,
    TaskStatus,
    _convert,
    capability,
)
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.observability import log, tracing, tracing_setup

RETRY_ONCE = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, retry_task_errors=True)


class FlakyWorker(BaseWorker):
    """`flaky` fails the first time it sees a text and succeeds after; `shout` always succeeds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: set[str] = set()
        self.trace_ids: list[str | None] = []

    @capability
    async def shout(self, text: str) -> str:
        """Upper-case `text`, noting the trace the handler runs in."""
        self.trace_ids.append(tracing.current_trace_id())
        return text.upper()

    @capability
    async def flaky(self, text: str) -> str:
        """Fail once per text, then succeed."""
        if text not in self.seen:
            self.seen.add(text)
            raise RuntimeError(f"first try of {text} fails")
        return text


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return trace.format_trace_id(span.context.trace_id)


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} has no parent"
    [found] = [s for s in spans if s.context is not None and s.context.span_id == span.parent.span_id]
    return found


async def finished(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    """The spans of `name` once `count` of them ended (the worker ends its span after it reported)."""
    await eventually(lambda: len(named(exporter.get_finished_spans(), name)) >= count, what=f"{count} {name} span(s)")
    return list(exporter.get_finished_spans())


async def test_a_task_through_a_daemon_is_one_trace_from_caller_to_handler(
    spans: InMemorySpanExporter, registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    worker = await start_worker(FlakyWorker)
    async with (
        OrchestratorServer(registry.address, port=0) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        await remote.wait_for_workers("shout", timeout_seconds=5)
        handles = [await remote.execute_task("shout", {"text": text}) for text in ("a", "b")]
        assert [await h.result(timeout_seconds=5) for h in handles] == ["A", "B"]
    found = await finished(spans, "handler", 2)

    callers = [s for s in named(found, "submit") if s.kind is SpanKind.CLIENT]
    assert len(callers) == 2
    assert len({hex_trace(s) for s in callers}) == 2  # two submissions on one session: two traces
    for caller, handle in zip(callers, handles, strict=True):
        trace_id = hex_trace(caller)
        mine = [s for s in found if hex_trace(s) == trace_id]
        assert sorted(s.name for s in mine) == ["attempt", "dispatch", "handler", "queue wait", "submit", "submit"]
        assert caller.attributes is not None and caller.attributes["wa.task_id"] == handle.task_id
        [served] = [s for s in named(mine, "submit") if s.kind is SpanKind.SERVER]
        assert parent_of(served, mine) is caller
        [waited], [attempt], [dispatch], [handler] = (
            named(mine, n) for n in ("queue wait", "attempt", "dispatch", "handler")
        )
        assert parent_of(waited, mine) is served and parent_of(attempt, mine) is served
        assert parent_of(dispatch, mine) is attempt and parent_of(handler, mine) is attempt
        assert handler.attributes is not None and handler.attributes["wa.worker_id"] == worker.worker_id
        assert attempt.status.status_code is StatusCode.UNSET
    # The handler ran inside its span: what it logs or traces itself belongs to the task's trace.
    assert sorted(worker.trace_ids) == sorted(hex_trace(s) for s in callers)


async def test_a_retried_attempt_links_to_the_attempt_it_retries(
    spans: InMemorySpanExporter, registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    await start_worker(FlakyWorker)
    async with AsyncOrchestrator(registry.address, retry_policy=RETRY_ONCE) as orchestrator:
        await orchestrator.wait_for_workers("flaky", timeout_seconds=5)
        handle = await orchestrator.execute_task("flaky", {"text": "x"})
        assert await handle.result(timeout_seconds=5) == "x"
    found = await finished(spans, "handler", 2)

    [submit] = named(found, "submit")
    assert submit.kind is SpanKind.PRODUCER
    assert {hex_trace(s) for s in found} == {hex_trace(submit)}
    first, second = sorted(named(found, "attempt"), key=lambda s: s.start_time or 0)
    assert [s.attributes["wa.attempt"] for s in (first, second) if s.attributes] == [1, 2]
    assert first.status.status_code is StatusCode.ERROR and "first try of x fails" in (first.status.description or "")
    assert second.status.status_code is StatusCode.UNSET
    assert not first.links
    assert [link.context.span_id for link in second.links] == [first.context.span_id if first.context else None]
    assert parent_of(first, found) is submit and parent_of(second, found) is submit
    handlers = sorted(named(found, "handler"), key=lambda s: s.start_time or 0)
    assert [parent_of(h, found) for h in handlers] == [first, second]
    assert [h.status.status_code for h in handlers] == [StatusCode.ERROR, StatusCode.UNSET]
    assert len(named(found, "queue wait")) == 2  # accepted, then again after the back-off


async def test_without_a_tracer_provider_nothing_is_traced_or_sent(
    registry: RegistryServer, start_worker: Callable[..., Any]
) -> None:
    assert not tracing.enabled()
    worker = await start_worker(FlakyWorker)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("shout", timeout_seconds=5)
        handle = await orchestrator.execute_task("shout", {"text": "quiet"})
        assert await handle.result(timeout_seconds=5) == "QUIET"
        record = await orchestrator.task(handle.task_id)
    assert record.status is TaskStatus.COMPLETED
    assert worker.trace_ids == [None]


def test_a_hostile_trace_context_from_the_wire_is_cut_to_the_w3c_fields() -> None:
    request = pb.SubmitTaskRequest(task=pb.Task(capability_name="shout"))
    request.task.trace_context.update(
        {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01", "tracestate": "x" * 10_000, "other": "y"}
    )
    spec = _convert.spec_from_pb(request)
    assert [key for key, _ in spec.trace_context] == ["traceparent"]
    garbage = tracing.parent_of({"traceparent": "not a traceparent"})
    assert garbage is not None and not trace.get_current_span(garbage).get_span_context().is_valid


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    log.configure("INFO", "json")
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


async def test_the_worker_s_task_log_lines_carry_the_trace_id(
    spans: InMemorySpanExporter,
    json_logs: None,
    registry: RegistryServer,
    start_worker: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    await start_worker(FlakyWorker)
    async with AsyncOrchestrator(registry.address) as orchestrator:
        await orchestrator.wait_for_workers("shout", timeout_seconds=5)
        handle = await orchestrator.execute_task("shout", {"text": "logged"})
        await handle.result(timeout_seconds=5)
    [submit] = named(await finished(spans, "handler", 1), "submit")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    task_lines = [line for line in lines if line.get("task_id") == handle.task_id]
    assert any("received" in line["message"] for line in task_lines)
    assert {line.get("trace_id") for line in task_lines} == {hex_trace(submit)}


def test_the_otel_variables_choose_the_exporters() -> None:
    assert tracing_setup.exporter_names({}) == []
    assert tracing_setup.exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}) == ["otlp"]
    assert tracing_setup.exporter_names({"OTEL_TRACES_EXPORTER": "console, none"}) == ["console"]
    assert tracing_setup.exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    with pytest.raises(ValueError):
        tracing_setup.exporter_names({"OTEL_TRACES_EXPORTER": "jaeger"})
    assert tracing_setup.configure("wa-test", {"OTEL_SERVICE_NAME": "x"}) is None  # nothing asked: nothing installed
    assert tracing_setup.configure("wa-test", {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}) is None
    assert not tracing.enabled()


def test_the_trace_file_gets_one_json_span_per_line(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = tracing_setup.JsonLinesSpanExporter(str(path))
    with tracing.tracer().start_as_current_span("one"), tracing.tracer().start_as_current_span("two"):
        pass
    exporter.export(spans.get_finished_spans())
    exporter.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["two", "one"]
    assert lines[0]["parent_id"] == lines[1]["context"]["span_id"]


async def test_a_restarted_daemon_continues_the_trace_of_a_stored_task(
    spans: InMemorySpanExporter, registry: RegistryServer, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    store = str(tmp_path / "tasks.db")
    async with (
        OrchestratorServer(registry.address, port=0, store_path=store, queue_without_workers=True) as daemon,
        RemoteOrchestrator(daemon.address) as remote,
    ):
        handle = await remote.execute_task("shout", {"text": "later"})  # no worker yet: it waits, stored
    [caller] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    spans.clear()
    await start_worker(FlakyWorker)
    async with OrchestratorServer(registry.address, port=0, store_path=store) as restarted:
        assert await (await restarted.orchestrator.watch(handle.task_id)).result(timeout_seconds=5) == "LATER"
    found = await finished(spans, "handler", 1)
    assert {hex_trace(s) for s in found} == {hex_trace(caller)}
    [attempt] = named(found, "attempt")
    assert parent_of(named(found, "handler")[0], found) is attempt
