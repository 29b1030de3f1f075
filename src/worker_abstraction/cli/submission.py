"""One `wa submit`: submit the task, follow it, print it as text or JSON, and stop cleanly on a signal.

On a terminal, a task that reports progress also gets a progress bar on stderr (`progress.py`). With
`stream`, the task's streamed output is printed as it comes, between its status lines (`chunks.py`).

A signal (Ctrl-C, SIGTERM) or a reader that left stdout ends the following, never the task a daemon
holds: the daemon keeps it, and stderr says how to follow or cancel it. A task of the orchestrator in
this process would be lost with the process, so it is canceled on its worker first, within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from worker_abstraction import AsyncOrchestrator, AsyncTaskHandle, RegistryClient
from worker_abstraction.cli import StopSignals, unreachable
from worker_abstraction.cli.chunks import ChunkPrinter
from worker_abstraction.cli.output import error_to_json, is_output, print_error, status_line, update_to_json
from worker_abstraction.cli.params import settle
from worker_abstraction.cli.progress import ProgressBar
from worker_abstraction.errors import (
    InvalidParametersError,
    NoWorkerError,
    OrchestratorUnavailableError,
    PermissionDeniedError,
    QueueFullError,
    RegistryUnavailableError,
    TaskExistsError,
    TaskRejectedError,
    WorkerAbstractionError,
)
from worker_abstraction.orchestrator.api import AsyncOrchestratorAPI
from worker_abstraction.orchestrator.remote.client import RemoteOrchestrator
from worker_abstraction.tls import TLSConfig
from worker_abstraction.types import CapabilitySpec, WorkerState
from worker_abstraction.versions import split_capability

EXIT_COMPLETED, EXIT_FAILED, EXIT_NOT_RUN = 0, 1, 2
CANCEL_WAIT_SECONDS = 5.0  # how long an interrupted in-process submit waits for the worker to confirm a cancel
REGISTRY_ANSWER_SECONDS = 5.0
# Errors that mean the task never ran: exit 2.
NOT_RUN = (
    NoWorkerError,
    PermissionDeniedError,
    TaskRejectedError,
    RegistryUnavailableError,
    InvalidParametersError,
    QueueFullError,
    OrchestratorUnavailableError,
    TaskExistsError,
)

T = TypeVar("T")


class Interrupted(Exception):
    """A stop signal arrived while the command waited."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.signal = sig

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal)


class Submission:
    """Submits one task and follows it; prints as text or JSON lines."""

    def __init__(
        self,
        capability: str,
        *,
        registry: str,
        orchestrator: str | None,
        json_output: bool,
        tls: TLSConfig | None = None,
        stream: bool = False,
    ) -> None:
        self.capability, self.version = split_capability(capability)  # ("summarize@^2": a version range)
        self.stream = stream
        self.tls = tls
        self.registry = registry
        self.address = orchestrator
        self.json = json_output
        self._signals: StopSignals | None = None

    async def run(
        self, params: Mapping[str, Any], options: Mapping[str, Any], *, detach: bool, wait_seconds: float
    ) -> int:
        """Submit, then follow (or not, with `detach`); the exit code."""
        with contextlib.ExitStack() as stack:
            self._signals = signals = StopSignals()
            if threading.current_thread() is threading.main_thread():  # only there can signals be caught
                stack.enter_context(signals)
            try:
                if self.address is not None:
                    async with RemoteOrchestrator(self.address, tls=self.tls) as remote:
                        return await self._submit(remote, params, options, detach=detach)
                print(
                    f"no orchestrator daemon configured: running one in this process (registry {self.registry})",
                    file=sys.stderr,
                    flush=True,
                )
                await self._guard(self._registry_answers())
                local = AsyncOrchestrator(self.registry, tls=self.tls)
                try:
                    await self._guard(local.start())
                    if wait_seconds > 0:
                        # A worker that just started may not be listed yet; if none comes, execute_task
                        # raises NoWorkerError with the full story.
                        try:
                            await self._guard(local.wait_for_workers(self.capability, timeout_seconds=wait_seconds))
                        except (NoWorkerError, TimeoutError):
                            # Workers offer it but none can take it (unreachable, not a worker): a task queued
                            # here would wait for as long as this command lives, for nothing. Say why instead.
                            stuck = await self._guard(self._unusable(local))
                            if stuck:
                                raise NoWorkerError(
                                    self.capability, f"none of the workers offering it can take it now: {stuck}"
                                ) from None
                    return await self._submit(local, params, options, detach=False)
                finally:
                    await local.aclose()
            except NOT_RUN as exc:
                return self.not_run(exc)
            except Interrupted as interrupt:
                print("interrupted before the task was submitted", file=sys.stderr)
                return interrupt.exit_code

    def not_run(self, exc: WorkerAbstractionError) -> int:
        """Report an error that kept the task from running; EXIT_NOT_RUN."""
        if isinstance(exc, OrchestratorUnavailableError) and self.address is not None:
            print(unreachable(exc, self.address), file=sys.stderr, flush=True)
        elif isinstance(exc, RegistryUnavailableError) and not isinstance(exc, PermissionDeniedError):
            print(unreachable(exc, self.registry), file=sys.stderr, flush=True)
        else:
            print_error(exc)
        self._result(None, None, error=exc)
        return EXIT_NOT_RUN

    async def _registry_answers(self) -> None:
        """Fail fast, in the one wording, when the registry an in-process orchestrator needs is not there."""
        client = RegistryClient(self.registry, tls=self.tls)
        try:
            async with asyncio.timeout(REGISTRY_ANSWER_SECONDS):
                await client.list_workers()
        except TimeoutError:
            reason = f"no answer within {REGISTRY_ANSWER_SECONDS:g}s"
            raise RegistryUnavailableError(f"registry {self.registry}: {reason}") from None
        finally:
            await client.aclose()

    async def _submit(
        self, orchestrator: AsyncOrchestratorAPI, params: Mapping[str, Any], options: Mapping[str, Any], *, detach: bool
    ) -> int:
        try:
            params = settle(params, await self._guard(self._declared(orchestrator)))
            if self.version:
                options = {"version": self.version, **options}
            handle = await self._guard(orchestrator.execute_task(self.capability, params, **options))
        except Interrupted as interrupt:
            if self.address is not None:
                print(
                    f"interrupted while submitting: the orchestrator at {self.address} may have accepted the task "
                    f"(wa task list --orchestrator {self.address})",
                    file=sys.stderr,
                )
            else:
                print("interrupted before the task was submitted", file=sys.stderr)
            return interrupt.exit_code
        if detach:
            self._submitted(handle, detached=True)
            return EXIT_COMPLETED
        try:
            return await self._guard(self._follow(handle, orchestrator))
        except Interrupted as interrupt:
            await self._let_go(handle, orchestrator)
            return interrupt.exit_code
        except BrokenPipeError:  # stdout's reader left (`| head`): as on a signal, but without a word
            await self._let_go(handle, orchestrator, quiet=True)
            raise

    async def _unusable(self, orchestrator: AsyncOrchestratorAPI) -> str:
        """Why the workers offering the capability cannot take it now ("" when one can, or none offers it)."""
        try:
            standing = await orchestrator.worker_health()
        except WorkerAbstractionError:
            return ""
        capable = [h for h in standing if h.worker.capability(self.capability) is not None]
        if not capable or any(h.state is not WorkerState.SUSPECT and h.circuit != "open" for h in capable):
            return ""
        shown = [f"{h.worker.worker_id} at {h.worker.address}: {h.state_reason or 'circuit open'}" for h in capable[:5]]
        more = f" (and {len(capable) - 5} more)" if len(capable) > 5 else ""
        return "; ".join(shown) + more

    async def _declared(self, orchestrator: AsyncOrchestratorAPI) -> CapabilitySpec | None:
        """The capability as a live worker declares it (None: no worker offers it, or none could be asked;
        then the submission itself says what is wrong)."""
        try:
            workers = await orchestrator.workers()
        except WorkerAbstractionError:
            return None
        return next((c for w in workers if (c := w.capability(self.capability)) is not None), None)

    async def _follow(self, handle: AsyncTaskHandle, orchestrator: AsyncOrchestratorAPI) -> int:
        waiting_for = "" if handle.worker_id or self.json else await self._unusable(orchestrator)
        self._submitted(handle, detached=False, waiting_for=waiting_for)
        chunks = ChunkPrinter(json_output=self.json) if self.stream else None
        try:
            # (No bar with --stream: streamed text has the terminal, and a bar's redraws would cut through it.)
            with ProgressBar(self.capability, enabled=not self.json and not self.stream) as bar:
                async for update in handle:
                    if is_output(update) and (chunks is not None or not self.json):
                        # Streamed output, no change of status: printed with --stream, else not at all in text.
                        if chunks is not None:
                            chunks.take(update)
                        continue
                    if chunks is not None:
                        chunks.end_line()
                    if self.json:
                        self._print_json(update_to_json(update))
                    else:
                        print(status_line(update), flush=True)
                    bar.show(update)
            output = await handle.result()
        except TaskRejectedError as exc:  # the worker refused it: it never ran
            print_error(exc)
            self._result(handle, handle.status.name, error=exc)
            return EXIT_NOT_RUN
        except (WorkerAbstractionError, TimeoutError) as exc:
            if isinstance(exc, OrchestratorUnavailableError) and self.address is not None:
                # Lost the daemon while following: the task may well go on there.
                print(f"{unreachable(exc, self.address)}; {self._hints(handle)}", file=sys.stderr, flush=True)
            else:
                print_error(exc)
            self._result(handle, handle.status.name, error=exc)
            return EXIT_FAILED
        if self.json:
            self._result(handle, handle.status.name, output=output)
        else:
            print(json.dumps(output, indent=2, ensure_ascii=False), flush=True)
        return EXIT_COMPLETED

    async def _let_go(
        self, handle: AsyncTaskHandle, orchestrator: AsyncOrchestratorAPI, *, quiet: bool = False
    ) -> None:
        """Stop following: a daemon keeps the task (say how to reach it), one in this process cancels it."""
        if self.address is not None and quiet:
            return
        if self.address is not None:
            print(f"interrupted: the orchestrator at {self.address} still runs task {handle.task_id}", file=sys.stderr)
            print(f"  {self._hints(handle)}", file=sys.stderr, flush=True)
            return
        where = f"on worker {handle.worker_id}" if handle.worker_id else "before it reached a worker"
        try:
            async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                await orchestrator.cancel(handle.task_id, "interrupted from the command line")
                final = await handle.wait()
        except TimeoutError:
            said = f"asked to cancel task {handle.task_id} {where}: no answer within {CANCEL_WAIT_SECONDS:g}s"
        except WorkerAbstractionError as exc:
            said = f"could not cancel task {handle.task_id} {where}: {type(exc).__name__}: {exc}"
        else:
            canceled = final.status.name == "CANCELED"
            said = (
                f"task {handle.task_id} canceled {where}"
                if canceled
                else f"task {handle.task_id} ended {final.status.name}"
            )
        if not quiet:
            print(f"interrupted: {said}", file=sys.stderr, flush=True)

    def _hints(self, handle: AsyncTaskHandle) -> str:
        task, address = handle.task_id, self.address
        return (
            f"follow it: wa task watch {task} --orchestrator {address}; "
            f"cancel it: wa cancel {task} --orchestrator {address}"
        )

    def _submitted(self, handle: AsyncTaskHandle, *, detached: bool, waiting_for: str = "") -> None:
        if self.json:
            self._print_json(
                {
                    "event": "submitted",
                    "task_id": handle.task_id,
                    "worker_id": handle.worker_id,
                    "worker_address": handle.worker_address,
                    "orchestrator": self.address,
                }
            )
        elif detached:
            print(handle.task_id, flush=True)
        elif handle.worker_id:
            print(f"task {handle.task_id} -> worker {handle.worker_id} ({handle.worker_address})", flush=True)
        else:
            why = (
                f"no worker offering it can take it now ({waiting_for})"
                if waiting_for
                else "every capable worker is busy"
            )
            print(f"task {handle.task_id} queued: {why}", flush=True)

    def _result(
        self,
        handle: AsyncTaskHandle | None,
        status: str | None,
        *,
        output: Any = None,
        error: BaseException | None = None,
    ) -> None:
        if not self.json:
            return
        document: dict[str, Any] = {"event": "result", "task_id": handle.task_id if handle else None, "status": status}
        if error is None:
            document["output"] = output
        else:
            document["error"] = error_to_json(error)
        self._print_json(document)

    @staticmethod
    def _print_json(document: Mapping[str, Any]) -> None:
        print(json.dumps(document, ensure_ascii=False, separators=(",", ":")), flush=True)

    async def _guard(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` unless a stop signal comes first; then cancel it and raise Interrupted."""
        assert self._signals is not None
        received = self._signals.received
        task = asyncio.ensure_future(awaitable)
        waiters: set[asyncio.Future[Any]] = {task, received}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # what finished is kept even when a signal came at the same time
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Interrupted(received.result())
