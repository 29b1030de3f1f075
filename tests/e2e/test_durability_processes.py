"""An orchestrator daemon SIGKILLed and restarted from its SQLite store loses no accepted task.

One store has one daemon: a second one on a store in use is refused, and a dead holder's store is free at once.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from processes import FAST_REGISTRY, FAST_WORKER, STARTUP_SECONDS, Daemon, Start, wa

from worker_abstraction import RemoteOrchestrator, TaskStatus


async def test_tasks_survive_a_sigkilled_daemon(start: Start, tmp_path: Path) -> None:
    store, gate = tmp_path / "tasks.db", tmp_path / "release"
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    await start(
        "worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address,
        "--max-concurrent", "1", *FAST_WORKER,
    )  # fmt: skip
    daemon_args = ("orchestrator", "--port", "0", "--registry", registry.address, "--store", str(store))
    first = await start(*daemon_args)
    async with RemoteOrchestrator(first.address) as remote:
        async with asyncio.timeout(20):
            while True:  # until the daemon's view has the worker
                probe = await remote.execute_task("hold", {})
                if (await probe.wait()).status is TaskStatus.COMPLETED:
                    break
        running = await remote.execute_task("hold", {"label": "running", "until_file": str(gate)})
        queued = await remote.execute_task("hold", {"label": "queued"})
        assert running.worker_id and not queued.worker_id
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = await start(*daemon_args)
    async with RemoteOrchestrator(second.address) as remote:
        resumed = [await remote.watch(running.task_id), await remote.watch(queued.task_id)]
        gate.touch()
        finals = [await h.wait(timeout_seconds=20) for h in resumed]
    assert [f.status for f in finals] == [TaskStatus.COMPLETED, TaskStatus.COMPLETED], [f.error_message for f in finals]
    assert [f.output for f in finals] == ["running", "queued"]


async def test_a_stopped_worker_is_replaced_and_its_late_result_is_fenced_off(start: Start, tmp_path: Path) -> None:
    gate = tmp_path / "release"
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    frozen = await start("worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address,
                         *FAST_WORKER)  # fmt: skip
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:")
    async with RemoteOrchestrator(daemon.address) as remote:
        async with asyncio.timeout(20):
            while (await (await remote.execute_task("hold", {})).wait()).status is not TaskStatus.COMPLETED:
                pass
        handle = await remote.execute_task("hold", {"label": "once", "until_file": str(gate)})
        assert handle.worker_id == frozen.worker_id
        frozen.process.send_signal(signal.SIGSTOP)  # alive but silent: the registry evicts it after its TTL
        try:
            survivor = await start("worker", "_slot_workers:SlotWorker", "--port", "0", "--registry",
                                   registry.address, *FAST_WORKER)  # fmt: skip
            gate.touch()  # the retry on the survivor finishes at once
            final = await handle.wait(timeout_seconds=20)
        finally:
            frozen.process.send_signal(signal.SIGCONT)  # the zombie wakes up and reports its old attempt
    assert final.status is TaskStatus.COMPLETED and final.output == "once"
    assert final.worker_id == survivor.worker_id and final.attempt == 2


async def test_a_cancel_reaches_a_worker_that_was_unreachable_when_asked(start: Start) -> None:
    registry = await start("registry", "--port", "0", "--ttl", "30")
    worker = await start("worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address,
                         *FAST_WORKER)  # fmt: skip
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:")
    async with RemoteOrchestrator(daemon.address) as remote:
        async with asyncio.timeout(20):
            while (await (await remote.execute_task("hold", {})).wait()).status is not TaskStatus.COMPLETED:
                pass
        handle = await remote.execute_task("hold", {"label": "never", "until_file": "/nonexistent", "seconds": 60})
        worker.process.send_signal(signal.SIGSTOP)  # unreachable, but not gone (the registry's TTL is long)
        try:
            assert await handle.cancel("asked while it slept")
        finally:
            worker.process.send_signal(signal.SIGCONT)
        final = await handle.wait(timeout_seconds=20)
    assert final.status is TaskStatus.CANCELED and final.error_message == "asked while it slept"


async def test_a_cancel_is_stored_and_carried_out_by_a_restarted_daemon(start: Start, tmp_path: Path) -> None:
    store = tmp_path / "tasks.db"
    registry = await start("registry", "--port", "0", "--ttl", "30")
    worker = await start("worker", "_slot_workers:SlotWorker", "--port", "0", "--registry", registry.address,
                         *FAST_WORKER)  # fmt: skip
    daemon_args = ("orchestrator", "--port", "0", "--registry", registry.address, "--store", str(store))
    first = await start(*daemon_args)
    async with RemoteOrchestrator(first.address) as remote:
        async with asyncio.timeout(20):
            while (await (await remote.execute_task("hold", {})).wait()).status is not TaskStatus.COMPLETED:
                pass
        handle = await remote.execute_task("hold", {"label": "never", "until_file": "/nonexistent", "seconds": 60})
        worker.process.send_signal(signal.SIGSTOP)  # the cancel cannot reach it...
        try:
            assert await handle.cancel("asked before the crash")
            assert (await remote.task(handle.task_id)).cancel_reason == "asked before the crash"
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL  # ...and the daemon dies meanwhile
            second = await start(*daemon_args)
        finally:
            worker.process.send_signal(signal.SIGCONT)
    async with RemoteOrchestrator(second.address) as remote:
        final = await (await remote.watch(handle.task_id)).wait(timeout_seconds=20)
        record = await remote.task(handle.task_id)
    assert final.status is TaskStatus.CANCELED and final.error_message == "asked before the crash"
    assert record.status is TaskStatus.CANCELED and len(record.attempts) == 1


async def refused(daemon_args: tuple[str, ...], holder: Daemon) -> None:
    """A daemon started on `holder`'s store exits 2 at once, with one line naming the store and `holder`."""
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            second = await wa(*daemon_args)
    except TimeoutError:
        raise AssertionError(f"a second daemon on {daemon_args[-1]} did not exit in {STARTUP_SECONDS}s") from None
    assert second.code == 2 and " listening on " not in second.out, (second.code, second.out, second.err)
    [line] = [line for line in second.err.splitlines() if " in use by " in line]
    assert f"task store {daemon_args[-1]} is in use by PID {holder.process.pid} on host " in line


async def test_a_second_daemon_on_a_store_in_use_exits_2_and_the_first_keeps_serving(
    start: Start, tmp_path: Path
) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    daemon_args = ("orchestrator", "--port", "0", "--registry", registry.address, "--store", str(tmp_path / "t.db"))
    first = await start(*daemon_args)
    await refused(daemon_args, first)
    assert first.process.returncode is None
    async with RemoteOrchestrator(first.address) as remote:
        assert await remote.queue_depths() == {}  # still serving


async def test_a_sigkilled_daemons_store_is_taken_at_once_by_the_next_one(start: Start, tmp_path: Path) -> None:
    registry = await start("registry", "--port", "0", *FAST_REGISTRY)
    daemon_args = ("orchestrator", "--port", "0", "--registry", registry.address, "--store", str(tmp_path / "t.db"))
    first = await start(*daemon_args)
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL  # no chance to let go of its lock
    second = await start(*daemon_args)
    await refused(daemon_args, second)  # the lock is the new daemon's now, not merely gone
