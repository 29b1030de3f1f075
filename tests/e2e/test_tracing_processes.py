"""One trace across processes: the caller, a `wa orchestrator` and a `wa worker`, each exporting its spans.

The daemon and the worker are configured as an operator would (OTEL_* variables), plus WA_TRACE_FILE, which
appends each span to a file of JSON lines as it ends: what the test reads back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from processes import FAST_REGISTRY, FAST_WORKER, Start, wa

from tests.conftest import eventually
from worker_abstraction import RemoteOrchestrator, RetryPolicy

Span = dict[str, Any]
RETRY_ONCE = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, retry_task_errors=True)


def traced(path: Path, service: str) -> dict[str, str]:
    return {"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": service, "WA_TRACE_FILE": str(path)}


def read(path: Path) -> list[Span]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def spans_of(path: Path, name: str, count: int) -> list[Span]:
    """The file's spans once `count` spans called `name` are in it."""
    await eventually(lambda: sum(s["name"] == name for s in read(path)) >= count, timeout_seconds=10, what=name)
    return read(path)


def named(spans: list[Span], name: str) -> list[Span]:
    return sorted((s for s in spans if s["name"] == name), key=lambda s: s["start_time"])


def span_id(span: Span) -> str:
    return str(span["context"]["span_id"])


async def test_one_trace_runs_from_the_caller_through_the_daemon_to_the_worker_and_its_retry(
    start: Start, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    daemon_file, worker_file = tmp_path / "daemon.jsonl", tmp_path / "worker.jsonl"
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start(
        "worker", "_workers:FlakyWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER,
        extra_env=traced(worker_file, "test-worker"),
    )  # fmt: skip
    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", str(tmp_path / "tasks.db"),
        extra_env=traced(daemon_file, "test-daemon"),
    )  # fmt: skip
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("flaky", timeout_seconds=20)
        handle = await remote.execute_task("flaky", {"text": "once"}, retry_policy=RETRY_ONCE)
        assert await handle.result(timeout_seconds=20) == "once"

    [caller] = spans.get_finished_spans()
    assert caller.name == "submit" and caller.context is not None
    trace_id = f"0x{trace.format_trace_id(caller.context.trace_id)}"
    on_daemon = await spans_of(daemon_file, "attempt", 2)
    on_worker = await spans_of(worker_file, "handler", 2)
    assert {s["context"]["trace_id"] for s in on_daemon + on_worker} == {trace_id}
    assert {s["resource"]["attributes"]["service.name"] for s in on_daemon} == {"test-daemon"}
    assert {s["resource"]["attributes"]["service.name"] for s in on_worker} == {"test-worker"}

    [served] = named(on_daemon, "submit")
    assert (
        served["kind"] == "SpanKind.SERVER"
        and served["parent_id"] == f"0x{trace.format_span_id(caller.context.span_id)}"
    )
    assert served["attributes"]["wa.task_id"] == handle.task_id
    first, second = named(on_daemon, "attempt")
    assert [first["parent_id"], second["parent_id"]] == [span_id(served)] * 2
    assert [first["attributes"]["wa.attempt"], second["attributes"]["wa.attempt"]] == [1, 2]
    assert first["status"]["status_code"] == "ERROR" and second["status"]["status_code"] == "UNSET"
    assert first["links"] == [] and [link["context"]["span_id"] for link in second["links"]] == [span_id(first)]
    assert [d["parent_id"] for d in named(on_daemon, "dispatch")] == [span_id(first), span_id(second)]
    assert [q["parent_id"] for q in named(on_daemon, "queue wait")] == [span_id(served)] * 2
    handlers = named(on_worker, "handler")
    assert [h["parent_id"] for h in handlers] == [span_id(first), span_id(second)]
    assert [h["status"]["status_code"] for h in handlers] == ["ERROR", "UNSET"]


async def test_wa_submit_starts_the_trace_the_daemon_continues(start: Start, tmp_path: Path) -> None:
    submit_file, daemon_file = tmp_path / "submit.jsonl", tmp_path / "daemon.jsonl"
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER)
    daemon = await start(
        "orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:",
        extra_env=traced(daemon_file, "test-daemon"),
    )  # fmt: skip
    submitted = await wa(
        "submit", "shout", "-p", "text=hi", "--json", "--orchestrator", daemon.address,
        extra_env=traced(submit_file, "test-submit"),
    )  # fmt: skip
    assert submitted.code == 0, submitted.err
    [caller] = read(submit_file)  # written as it ended, before the process exited
    assert caller["name"] == "submit" and caller["kind"] == "SpanKind.CLIENT"
    assert caller["resource"]["attributes"]["service.name"] == "test-submit"
    on_daemon = await spans_of(daemon_file, "attempt", 1)
    [served] = named(on_daemon, "submit")
    assert served["parent_id"] == span_id(caller)
    assert {s["context"]["trace_id"] for s in on_daemon} == {caller["context"]["trace_id"]}


async def test_an_unknown_exporter_is_a_usage_error(tmp_path: Path) -> None:
    result = await wa("registry", "--port", "0", extra_env={"OTEL_TRACES_EXPORTER": "carrier-pigeon"})
    assert result.code == 2 and "OTEL_TRACES_EXPORTER" in result.err
