"""Wire compatibility with the seed: programs built from the seed's worker.proto alone, against ours, and back.

Seed-side programs (tests/e2e/seed_interop/*.py) import stubs generated from the seed's proto into a temporary
directory, so they run as subprocesses: both sets of stubs in one process clash on proto symbol names. Our
registry, workers and orchestrator run in-process on 127.0.0.1:0. The subprocesses announce what they do on
stdout, one line per event, and the tests wait for those lines; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2

from worker_abstraction import (
    AsyncOrchestrator,
    BaseWorker,
    RegistryClient,
    RegistryServer,
    TaskContext,
    TaskFailedError,
    TaskRejectedError,
    TaskStatus,
    capability,
)
from worker_abstraction._proto import worker_pb2

HERE = Path(__file__).resolve().parent
SEED_DIR = HERE / "seed_interop"
# The verbatim copy the tests use; a fresh clone also has the original beside the repository.
SEED_PROTO = HERE.parents[1] / "docs" / "seed" / "worker.proto"  # the seed's contract, kept verbatim
SHARED_SEED_PROTO = HERE.parents[1] / ".." / "shared" / "seed" / "worker.proto"
WAIT_SECONDS = 10.0
SEED_ERROR = "Simulated error during task execution."


class SeedTools(BaseWorker):
    """The seed's two example tools, served by our SDK."""

    @capability
    async def dummy_processor(self, ctx: TaskContext, input: str = "default_input") -> dict[str, str]:
        """Convert input text to uppercase."""
        await ctx.report_progress(0.5, "processing")
        return {"result": f"Processed: {input.upper()}", "worker": self.name}

    @capability
    def error_simulator(self) -> None:
        """Always fail."""
        raise ValueError(SEED_ERROR)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def seed_stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding worker_pb2 / worker_pb2_grpc generated from the seed's proto alone."""
    out = tmp_path_factory.mktemp("seed_stubs")
    shutil.copy(SEED_PROTO, out / "worker.proto")  # the seed's programs `import worker_pb2`
    _protoc(out, "--python_out=.", "--grpc_python_out=.", "worker.proto")
    return out


def _protoc(cwd: Path, *args: str) -> None:
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"-I{well_known}", *args],
        cwd=cwd,
        check=True,
        timeout=60,
        capture_output=True,
    )


class SeedProcess:
    """A seed-side program: its stdout lines as they come, and a stderr file for failure messages."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.lines: list[str] = []
        self._cursor = 0
        self._eof = False
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            async with self._changed:
                self.lines.append(raw.decode().rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    async def expect(self, pattern: str, timeout_seconds: float = WAIT_SECONDS) -> re.Match[str]:
        """Wait for the next line (after the previous match) that matches `pattern`."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout_seconds), self._changed:
                while True:
                    while self._cursor < len(self.lines):
                        self._cursor += 1
                        if match := regex.search(self.lines[self._cursor - 1]):
                            return match
                    if self._eof:
                        break
                    await self._changed.wait()
        except TimeoutError:
            pass
        raise AssertionError(f"no line matching {pattern!r}; {self.describe()}")

    def describe(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"stdout so far: {self.lines}; stderr:\n{stderr}"

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        # Reading to EOF (rather than canceling) lets asyncio close the pipe transport without a warning.
        async with asyncio.timeout(5):
            await self._reader


Spawn = Callable[..., Awaitable[SeedProcess]]


@pytest.fixture
async def spawn(seed_stubs: Path, tmp_path: Path) -> AsyncIterator[Spawn]:
    """Starts a seed-side program with only the seed's stubs importable; stops them all at teardown."""
    started: list[SeedProcess] = []

    async def _spawn(script: str, *args: str) -> SeedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
        env.update(PYTHONPATH=str(seed_stubs), PYTHONUNBUFFERED="1")
        stderr_path = tmp_path / f"{script}.{len(started)}.stderr"
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SEED_DIR / script),
                *args,
                cwd=seed_stubs,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        seed = SeedProcess(process, stderr_path)
        started.append(seed)
        return seed

    yield _spawn
    await asyncio.gather(*(seed.stop() for seed in started))


@pytest.fixture
async def registry() -> AsyncIterator[RegistryServer]:
    async with RegistryServer(host="127.0.0.1", port=0) as server:
        yield server


# ------------------------------------------------------------------------------------- the contract itself


def test_the_seed_proto_copy_is_verbatim() -> None:
    if not SHARED_SEED_PROTO.exists():
        pytest.skip(f"{SHARED_SEED_PROTO} is absent (the repository's copy, docs/seed/, is used instead)")
    assert SEED_PROTO.read_bytes() == SHARED_SEED_PROTO.read_bytes()


def test_our_contract_keeps_every_seed_definition_unchanged(tmp_path: Path) -> None:
    # The seed's descriptors are parsed from a descriptor set, never imported: no symbol clash in-process.
    shutil.copy(SEED_PROTO, tmp_path / "worker.proto")
    _protoc(tmp_path, "--descriptor_set_out=seed.pb", "worker.proto")
    seed = descriptor_pb2.FileDescriptorSet.FromString((tmp_path / "seed.pb").read_bytes()).file[0]
    for message in seed.message_type:  # protoc fills json_name in descriptor sets; CopyToProto does not
        for seed_field in [*message.field, *(f for n in message.nested_type for f in n.field)]:
            seed_field.ClearField("json_name")
    ours = descriptor_pb2.FileDescriptorProto()
    worker_pb2.DESCRIPTOR.CopyToProto(ours)

    assert ours.package == seed.package == "worker_abstraction"
    our_messages = {m.name: m for m in ours.message_type}
    for message in seed.message_type:
        assert message.name in our_messages, f"message {message.name} is missing"
        our_fields = {f.number: f for f in our_messages[message.name].field}
        for seed_field in message.field:
            assert our_fields.get(seed_field.number) == seed_field, f"{message.name}.{seed_field.name} changed"
        our_nested = {n.name: n for n in our_messages[message.name].nested_type}
        for nested in message.nested_type:  # map entries, e.g. Task.metadata
            assert our_nested.get(nested.name) == nested, f"{message.name}.{nested.name} changed"
    our_enums = {e.name: e for e in ours.enum_type}
    for enum in seed.enum_type:
        assert enum.name in our_enums, f"enum {enum.name} is missing"
        assert set(map(str, enum.value)) <= set(map(str, our_enums[enum.name].value)), f"enum {enum.name} changed"
    our_services = {s.name: {m.name: m for m in s.method} for s in ours.service}
    for service in seed.service:
        for method in service.method:
            assert our_services[service.name].get(method.name) == method, f"{service.name}.{method.name} changed"


# ------------------------------------------------------------------------------------ seed side -> ours


async def test_a_seed_client_registers_lists_and_runs_tasks_on_our_registry_and_worker(
    registry: RegistryServer, spawn: Spawn
) -> None:
    # Served without registering: the seed client does the registering, from GetWorkerInfo.
    async with SeedTools(None, host="127.0.0.1", port=0) as worker:
        client = await spawn("seed_client.py", "--registry", registry.address, "--worker", worker.address)
        async with asyncio.timeout(30):
            code = await client.process.wait()
            await client.stop()
        assert code == 0, client.describe()
        report: dict[str, Any] = json.loads(client.lines[-1])

        info = report["worker_info"]
        assert info["address"] == worker.address
        assert info["capabilities"] == ["dummy_processor", "error_simulator"]
        assert report["register"]["success"] is True
        assert report["heartbeat"] == {"success": True}
        assert report["heartbeat_unknown"] == {"success": False}
        assert {"worker_id": info["worker_id"], "address": worker.address, "capabilities": info["capabilities"]} in (
            report["listed"]
        )
        assert report["by_id"] == {"worker_id": info["worker_id"], "address": worker.address}
        assert report["by_unknown_id"] == "NOT_FOUND"

        success = report["success"]
        assert success["accepted"] is True
        assert success["statuses"][-1] == "TASK_STATUS_COMPLETED"
        assert success["output"]["result"] == "Processed: HELLO WORLD"
        failure = report["failure"]
        assert failure["statuses"][-1] == "TASK_STATUS_FAILED"
        assert SEED_ERROR in failure["error_message"]
        assert report["unsupported"]["accepted"] is False
        assert report["unsupported"]["message"]
        assert report["late"] == ["TASK_STATUS_COMPLETED"]

        # Our own client sees what the seed client registered.
        our_client = RegistryClient(registry.address)
        try:
            assert (await our_client.get_worker(info["worker_id"])).address == worker.address
        finally:
            await our_client.aclose()


async def test_a_seed_worker_registers_with_our_registry_and_serves_our_orchestrator(
    registry: RegistryServer, spawn: Spawn
) -> None:
    seed_worker = await spawn("seed_worker_server.py", "--registry", registry.address)
    ready = await seed_worker.expect(r"^seed-worker (\S+) listening on (\S+)$")
    seed_id, seed_address = ready[1], ready[2]

    async with AsyncOrchestrator(registry.address) as orch:
        [info] = await orch.wait_for_workers("dummy_processor", timeout_seconds=WAIT_SECONDS)
        assert (info.worker_id, info.address) == (seed_id, seed_address)
        assert {c.name for c in info.capabilities} == {"dummy_processor", "error_simulator", "repeat_text"}

        handle = await orch.execute_task("dummy_processor", {"input": "hello world"}, timeout_seconds=10)
        assert handle.worker_id == seed_id
        async with asyncio.timeout(WAIT_SECONDS):
            # Seed updates carry no sequence numbers; the stream still ends at the terminal one.
            statuses = [update.status async for update in handle]
            output = await handle.result()
        assert statuses[-1] is TaskStatus.COMPLETED
        assert output == {"result": "Processed: HELLO WORLD", "worker": "seed-only-worker"}

        # "times" is declared with the seed's short type name "int".
        handle = await orch.execute_task("repeat_text", {"text": "ab", "times": 3}, timeout_seconds=10)
        async with asyncio.timeout(WAIT_SECONDS):
            assert await handle.result() == "ababab"

        handle = await orch.execute_task("error_simulator", {}, timeout_seconds=10)
        with pytest.raises(TaskFailedError) as failed:
            async with asyncio.timeout(WAIT_SECONDS):
                await handle.result()
        assert failed.value.error_message == SEED_ERROR

        handle = await orch.execute_task("dummy_processor", {"input": "reject me"}, timeout_seconds=10)
        with pytest.raises(TaskRejectedError) as rejected:
            async with asyncio.timeout(WAIT_SECONDS):
                await handle.result()
        assert rejected.value.reason == "this seed worker refuses 'reject me'"


async def test_a_seed_worker_registers_again_after_our_registry_evicted_it(spawn: Spawn) -> None:
    # Heartbeats rarer than the TTL: the worker is evicted between two of them, and the next heartbeat is
    # answered success=false, the only "I do not know you" a seed worker understands.
    async with RegistryServer(host="127.0.0.1", port=0, ttl_seconds=0.3, sweep_interval_seconds=0.1) as server:
        seed_worker = await spawn("seed_worker_server.py", "--registry", server.address, "--heartbeat-interval", "1")
        ready = await seed_worker.expect(r"^seed-worker (\S+) listening on")
        await seed_worker.expect(rf"^registered {re.escape(ready[1])}$")


# ------------------------------------------------------------------------------------ ours -> seed side


async def test_our_orchestrator_polls_a_seed_registry_and_runs_tasks_on_our_worker(spawn: Spawn) -> None:
    seed_registry = await spawn("seed_registry_server.py")
    address = (await seed_registry.expect(r"^seed-registry listening on (\S+)$"))[1]

    async with SeedTools(address, host="127.0.0.1", port=0, heartbeat_interval_seconds=0.2) as worker:
        await seed_registry.expect(rf"^registered {re.escape(worker.worker_id)} {re.escape(worker.address)}$")
        async with AsyncOrchestrator(address, poll_interval_seconds=0.1) as orch:
            # WatchWorkers is answered UNIMPLEMENTED, so the orchestrator falls back to GetAvailableWorkers.
            await seed_registry.expect(r"^unimplemented /worker_abstraction\.RegistryService/WatchWorkers$")
            await seed_registry.expect(r"^listed 1$")
            [info] = await orch.wait_for_workers("dummy_processor", timeout_seconds=WAIT_SECONDS)
            assert info.worker_id == worker.worker_id

            handle = await orch.execute_task("dummy_processor", {"input": "hello world"}, timeout_seconds=10)
            assert handle.worker_id == worker.worker_id
            async with asyncio.timeout(WAIT_SECONDS):
                assert (await handle.result())["result"] == "Processed: HELLO WORLD"

            handle = await orch.execute_task("error_simulator", {}, timeout_seconds=10)
            with pytest.raises(TaskFailedError):
                async with asyncio.timeout(WAIT_SECONDS):
                    await handle.result()


async def test_our_worker_registers_again_when_a_seed_registry_forgets_it(spawn: Spawn) -> None:
    seed_registry = await spawn("seed_registry_server.py")
    address = (await seed_registry.expect(r"^seed-registry listening on (\S+)$"))[1]

    worker = SeedTools(address, host="127.0.0.1", port=0, heartbeat_interval_seconds=0.2)
    await worker.start()
    try:
        worker_id = re.escape(worker.worker_id)
        await seed_registry.expect(rf"^registered {worker_id} ")
        seed_registry.process.send_signal(signal.SIGUSR1)  # as if the registry restarted
        await seed_registry.expect(r"^forgot 1$")
        await seed_registry.expect(rf"^heartbeat {worker_id} unknown$")
        await seed_registry.expect(rf"^registered {worker_id} ")

        async with AsyncOrchestrator(address, poll_interval_seconds=0.1) as orch:
            await orch.wait_for_workers("dummy_processor", timeout_seconds=WAIT_SECONDS)
            handle = await orch.execute_task("dummy_processor", {}, timeout_seconds=10)
            async with asyncio.timeout(WAIT_SECONDS):
                assert (await handle.result())["result"] == "Processed: DEFAULT_INPUT"
    finally:
        async with asyncio.timeout(WAIT_SECONDS):
            await worker.stop(grace_seconds=1.0)
    # A seed registry has no DeregisterWorker: the worker still stops cleanly (it simply stops heartbeating).
    await seed_registry.expect(r"^unimplemented /worker_abstraction\.RegistryService/DeregisterWorker$")
