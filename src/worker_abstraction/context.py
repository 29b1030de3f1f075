"""TaskContext: what a capability handler knows about the task it runs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pydantic_core

if TYPE_CHECKING:
    from worker_abstraction.worker.asking import Questions


class _Reported:
    """Returned by `report_progress`; awaiting it is allowed and does nothing more."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # pragma: no cover - makes this a generator


_REPORTED = _Reported()


class TaskContext:
    """Handed to a capability that declares a parameter annotated `TaskContext`.

    Attributes:
        task_id: the task's id.
        capability: the capability's name.
        params: the decoded arguments.
        metadata: the task's metadata map.
        worker_id: the worker running the task.
        attempt: which try of the task this is, counting from 1 (an orchestrator that does not number its
            tries, as a seed-built one, always reads as 1).
        session_key: the task's session key (empty: none): the key's tasks come to this worker while it lives,
            so state kept for the key here is there for the next of them.
        session_moved: the worker the key's earlier tasks ran on is gone: state kept for the key there is lost.
        deadline: when this worker stops the handler for overrunning the task's `timeout_seconds`, counted
            from when the task started running here, in UTC (None when it has no timeout). It is the same
            instant `time_remaining_seconds()` counts down to.
    """

    def __init__(
        self,
        *,
        task_id: str,
        capability: str,
        params: Mapping[str, Any],
        metadata: Mapping[str, str],
        worker_id: str,
        deadline: datetime | None,
        deadline_monotonic: float | None,
        publish_progress: Callable[[float, str], None],
        loop: asyncio.AbstractEventLoop,
        cancel_requested: asyncio.Event | None = None,
        attempt: int = 1,
        publish_chunk: Callable[[str, str, bool], bool] | None = None,
        questions: Questions | None = None,
        session_key: str = "",
        session_moved: bool = False,
    ) -> None:
        self.task_id = task_id
        self.capability = capability
        self.params = params
        self.metadata = metadata
        self.worker_id = worker_id
        self.attempt = attempt
        self.deadline = deadline
        self._deadline_monotonic = deadline_monotonic
        self._publish_progress = publish_progress
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._cancel_requested = cancel_requested or asyncio.Event()
        self.session_key = session_key
        self.session_moved = session_moved
        self._publish_chunk = publish_chunk
        self._questions = questions

    def _begin(self, timeout_seconds: float) -> None:
        """The handler starts now (a plain one may have waited for a thread): its deadline counts from here."""
        if timeout_seconds > 0:
            self._deadline_monotonic = time.monotonic() + timeout_seconds
            self.deadline = datetime.now(UTC) + timedelta(seconds=timeout_seconds)

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel the task: finish up (or raise) soon, or be stopped.

        Plain handlers running in threads should check it now and then; async handlers may also await
        `wait_cancel_requested()`. After the worker's grace period an async handler is canceled outright.
        """
        return self._cancel_requested.is_set()

    async def wait_cancel_requested(self) -> None:
        """Return once cancellation was asked for (from async handlers)."""
        await self._cancel_requested.wait()

    def time_remaining_seconds(self) -> float | None:
        """Seconds left before the deadline, or None without one."""
        if self._deadline_monotonic is None:
            return None
        return max(0.0, self._deadline_monotonic - time.monotonic())

    def report_progress(self, progress: float, message: str = "") -> _Reported:
        """Publish progress (0.0 to 1.0) as a RUNNING update subscribers see.

        Safe from async handlers and from plain handlers running in the thread pool; `await` is optional.
        """
        value = min(1.0, max(0.0, float(progress)))
        if threading.get_ident() == self._loop_thread:
            self._publish_progress(value, message)
        else:
            self._loop.call_soon_threadsafe(self._publish_progress, value, message)
        return _REPORTED

    def emit(self, chunk: Any, *, last: bool = False) -> _Reported:
        """Stream one piece of output to whoever follows the task, now: a `str` goes as text (tokens, lines),
        anything else as JSON (rows, events). Chunks arrive in order, numbered from 1; the handler's return
        value stays the task's result. `last=True` says no chunk follows.

        Safe from async handlers and from plain handlers running in the thread pool; `await` is optional.
        Chunks emitted after the task stopped running are dropped.
        """
        if isinstance(chunk, str):
            text, data_json = chunk, ""
        else:
            text, data_json = "", pydantic_core.to_json(chunk).decode()
        publish = self._publish_chunk
        if publish is not None:
            if threading.get_ident() == self._loop_thread:
                publish(text, data_json, last)
            else:
                self._loop.call_soon_threadsafe(publish, text, data_json, last)
        return _REPORTED

    async def request_input(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  (the wait's own bound, as the issue's API names it)
    ) -> Any:
        """Ask for input and wait for the answer: the task shows INPUT_REQUIRED with `prompt` and `schema` (a JSON
        Schema the answer must satisfy; None: any JSON value) until someone answers (`handle.provide_input`,
        `wa respond`, the dashboard). Returns the answer's value. The task's execution timeout stops while it
        waits; `timeout` (seconds; None: no limit) bounds the wait itself.

        Raises:
            InputTimeoutError: nobody answered within `timeout` (uncaught, the task fails as InputTimeout).
            InvalidParametersError: a prompt, schema or timeout that cannot be used.
        """
        if self._questions is None:
            raise RuntimeError("this task's worker cannot ask for input")
        answer = await self._questions.ask(prompt, schema, timeout)
        self._shift()
        return answer.value

    def request_input_blocking(
        self, prompt: str, *, schema: dict[str, Any] | str | None = None, timeout: float | None = None
    ) -> Any:
        """`request_input` from a plain handler running in the thread pool: blocks the thread until answered."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("request_input_blocking is for plain handlers; async handlers await request_input")
        asked = asyncio.run_coroutine_threadsafe(self.request_input(prompt, schema=schema, timeout=timeout), self._loop)
        return asked.result()

    def _shift(self) -> None:
        """The deadline moves on by the time spent waiting (it does not count as running)."""
        if self._deadline_monotonic is None or self._questions is None:
            return
        scope = self._questions.deadline.scope
        when = scope.when() if scope is not None else None
        if when is not None:
            remaining = max(0.0, when - self._loop.time())
            self._deadline_monotonic = time.monotonic() + remaining
            self.deadline = datetime.now(UTC) + timedelta(seconds=remaining)
