"""A schema may refer only within itself: nothing it says makes a registry or an orchestrator fetch anything
(a request forgery), and validating against it never blocks the event loop."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc import aio

from tests.looplag import loop_lag
from worker_abstraction import RegistryServer
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc
from worker_abstraction.schemas import CACHE_CHARS, cache_sizes, schema_problems, validator
from worker_abstraction.types import CapabilitySpec, ParameterSpec
from worker_abstraction.validation import parameter_problems

SLOW_ANSWER_SECONDS = 1.0
MAX_LAG_SECONDS = 0.1  # a fetch would freeze the loop for SLOW_ANSWER_SECONDS


class _Slow(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        time.sleep(SLOW_ANSWER_SECONDS)  # (the server's own thread: what a fetch on the loop would wait for)
        body = json.dumps({"type": "string"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    """A schema server that answers after a second; its URL. Asserts that nobody ever asked it anything."""
    _Slow.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/schema.json"
        assert _Slow.requests == [], f"fetched: {_Slow.requests}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _schemas(url: str) -> list[dict[str, object]]:
    return [
        {"$ref": url},
        {"properties": {"a": {"$ref": url + "#/definitions/x"}}},
        {"$defs": {"a": {"$ref": "relative.json"}}, "$ref": "#/$defs/a"},
        {"$dynamicRef": url},
        {"allOf": [{"$ref": "file:///etc/passwd"}]},
    ]


async def test_a_registration_whose_schema_refers_outside_itself_is_refused(
    registry: RegistryServer, slow_server: str
) -> None:
    async with aio.insecure_channel(registry.address) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)
        for index, schema in enumerate(_schemas(slow_server)):
            parameter = pb.ToolParameter(name="text", type="string", json_schema=json.dumps(schema))
            info = pb.WorkerInfo(worker_id=f"w{index}", name="w", address=f"127.0.0.1:{6100 + index}")
            info.capabilities.add(name="c", parameters=[parameter])
            async with loop_lag() as lag:
                with pytest.raises(aio.AioRpcError) as refused:
                    await stub.RegisterWorker(pb.RegisterWorkerRequest(worker_info=info), timeout=5)
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, schema
            assert lag.worst_seconds < MAX_LAG_SECONDS, (schema, lag.worst_seconds)
        assert [w async for w in stub.GetAvailableWorkers(empty_pb2.Empty(), timeout=5)] == []


async def test_local_references_are_accepted_and_resolved_without_any_fetch() -> None:
    schema = {"$id": "http://127.0.0.1:9/unreachable", "$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}
    assert schema_problems(json.dumps(schema)) == []
    spec = CapabilitySpec("c", "", (ParameterSpec("n", "integer", json_schema=json.dumps(schema)),))
    async with loop_lag() as lag:
        assert parameter_problems(spec, {"n": 3}) == []
        assert parameter_problems(spec, {"n": "three"}) != []
    assert lag.worst_seconds < MAX_LAG_SECONDS


async def test_an_orchestrator_told_of_such_a_schema_by_another_registry_fetches_nothing(slow_server: str) -> None:
    """A seed-built registry checks no schemas: the orchestrator must not fetch what one lets through."""
    spec = CapabilitySpec("c", "", (ParameterSpec("text", "string", json_schema=json.dumps({"$ref": slow_server})),))
    async with loop_lag() as lag:
        for _ in range(3):
            assert parameter_problems(spec, {"text": "hi"}) == []  # only the declared type can be checked
            await asyncio.sleep(0)
    assert lag.worst_seconds < MAX_LAG_SECONDS


def test_the_schema_caches_are_bounded_by_the_size_of_what_they_hold() -> None:
    """Thousands of distinct large schemas (hostile registrations) do not stay in memory."""
    big = "x" * 30_000
    for n in range(400):  # 400 x 30 KB of text: past the 4 MiB the caches keep
        text = json.dumps({"type": "string", "description": f"{n}{big}"})
        assert schema_problems(text) == []
        assert not list(validator("string", text).iter_errors("fine"))
    sizes = cache_sizes()
    assert all(chars <= CACHE_CHARS for _, chars in sizes.values()), sizes
    assert sizes["parsed"][0] < 400 and sizes["validators"][0] < 400, sizes
