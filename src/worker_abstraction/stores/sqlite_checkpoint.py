"""The SQLite task store's log and its checkpoints: when the log is folded back into the database.

After each commit the store asks `LogCheckpoints.watch` to look at the log's size. Past `checkpoint_bytes` a
checkpoint starts on the reader thread (PASSIVE: commits go on while it copies the log); as its first pass
ends, commits are `held` while a last pass copies what they wrote meanwhile, so that the next commit starts
the log over. Should the log reach `log_limit_bytes` before a checkpoint ends, commits are held until it does.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# The log's size at which a checkpoint starts (on the reader thread, while commits go on; the writer never
# checkpoints itself), and the size at which commits wait for it: the log stays under that plus one group commit.
CHECKPOINT_BYTES = 16 * 2**20
LOG_LIMIT_BYTES = 64 * 2**20


class LogCheckpoints:
    """The checkpoints of one store's log (`log`: the `-wal` file), run on its reader thread (`executor`).

    `reader` gives the reader's connection (None: nothing to checkpoint); `commit_pending` commits what waited
    while commits were held; `on_checkpoint` is told of each checkpoint as it ends (see `SqliteTaskStore`).
    """

    def __init__(
        self,
        log: str,
        executor: ThreadPoolExecutor,
        reader: Callable[[], sqlite3.Connection | None],
        commit_pending: Callable[[], None],
        *,
        checkpoint_bytes: int,
        log_limit_bytes: int,
        on_checkpoint: Callable[[float, float], None] | None,
    ) -> None:
        self._log = log  # its size is what was written since the log started over (see prepare)
        self._executor = executor
        self._reader = reader
        self._commit_pending = commit_pending
        self._checkpoint_bytes = checkpoint_bytes
        self._log_limit_bytes = log_limit_bytes
        self._on_checkpoint = on_checkpoint
        self._checkpoint_running = False
        self._log_grew = False  # a commit wrote to the log since the checkpoint's first pass began
        self.held = False  # commits wait: for a checkpoint's last pass, or for it to end (the log at its limit)
        self._checkpoint_began = self._held_since = 0.0  # (perf_counter)
        self.closing = False  # no checkpoint pass starts once set

    def watch(self) -> None:
        """After a commit: start a checkpoint once the log is big enough, hold commits once it is too big."""
        self._log_grew = True
        try:
            size = os.stat(self._log).st_size
        except OSError:
            return
        if size > self._checkpoint_bytes and not self._checkpoint_running and not self.closing:
            self._checkpoint_running, self._log_grew = True, False
            self._checkpoint_began = time.perf_counter()
            self._executor.submit(self._copy_log, asyncio.get_running_loop(), self._last_pass)
        if size >= self._log_limit_bytes and self._checkpoint_running:
            self._hold()  # until the checkpoint ends

    def _hold(self) -> None:
        if not self.held:
            self.held, self._held_since = True, time.perf_counter()

    def _copy_log(self, loop: asyncio.AbstractEventLoop, then: Callable[[], None]) -> None:
        """One pass of a checkpoint, on the reader thread; `then` runs on the loop once it ends."""
        try:
            if (reader := self._reader()) is not None:
                # PASSIVE: copies what it can and never waits for the writer. The log is synced before it is
                # copied, the database once the whole log is in it (not after a first pass that commits outran).
                reader.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the next checkpoint tries again; the log only grows meanwhile
        finally:
            loop.call_soon_threadsafe(then)

    def _last_pass(self) -> None:
        if self.closing:
            self._checkpoint_running = False
        elif not self._log_grew:
            self._checkpointed()  # nothing was committed during the first pass: it copied the whole log
        else:
            # Commits wait while the last pass copies what they wrote during the first; only then is the whole
            # log in the database, and can the next commit start it over.
            self._hold()
            self._executor.submit(self._copy_log, asyncio.get_running_loop(), self._checkpointed)

    def _checkpointed(self) -> None:
        ended = time.perf_counter()
        held = ended - self._held_since if self.held else 0.0
        self._checkpoint_running = self.held = False
        self._commit_pending()  # the first commit after a complete checkpoint starts the log over
        if self._on_checkpoint is not None:
            self._on_checkpoint(ended - self._checkpoint_began, held)
