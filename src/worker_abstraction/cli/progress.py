"""`wa submit`'s progress bar: a running task's reported progress, drawn on stderr when stderr is a terminal.

The bar is an addition for the eyes only. Stdout carries the same lines with or without it, so a pipe, a
file or `--json` sees no difference; with stderr redirected there is no bar at all.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from worker_abstraction.types import TaskStatus, TaskUpdate


class ProgressBar:
    """One task's progress bar: it appears at the task's first report of progress, follows every later one,
    and is cleared when the task ends (the status lines on stdout say how it ended).

    Nothing is drawn when `enabled` is false or `console` (default: one on stderr) is no terminal.
    Use it as a context manager, so the bar is cleared however the following ends.

    Args:
        label: what the bar is called, e.g. the capability.
        console: where to draw; tests pass a recording one.
        enabled: false for output that must stay machine-readable (`--json`).
    """

    def __init__(self, label: str, *, console: Console | None = None, enabled: bool = True) -> None:
        self.label = label
        self.console = console if console is not None else Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    @property
    def visible(self) -> bool:
        """Whether the bar is on the screen now."""
        return self._progress is not None

    def show(self, update: TaskUpdate) -> None:
        """Draw what `update` says: progress and its message while RUNNING, 100% then nothing at the end."""
        if not self.enabled:
            return
        if update.status is TaskStatus.RUNNING and (update.progress or update.progress_message):
            self._advance(update.progress, update.progress_message)
        elif update.is_terminal:
            if update.status is TaskStatus.COMPLETED and self.visible:
                self._advance(1.0, update.progress_message)
            self.close()

    def close(self) -> None:
        """Clear the bar (if it is shown)."""
        progress, self._progress, self._task = self._progress, None, None
        if progress is not None:
            progress.stop()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _advance(self, fraction: float, message: str) -> None:
        if self._progress is None or self._task is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[message]}"),
                console=self.console,
                transient=True,
                # Status lines printed to a stdout that is the same terminal go above the bar, not through it.
                redirect_stdout=sys.stdout.isatty(),
                redirect_stderr=False,
            )
            self._task = self._progress.add_task(self.label, total=1.0, message="")
            self._progress.start()
        self._progress.update(self._task, completed=min(max(fraction, 0.0), 1.0), message=message, refresh=True)
