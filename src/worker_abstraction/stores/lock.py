"""One task store, one daemon: an exclusive lock on a sidecar file beside the store.

Two orchestrators on one store would each resume the other's tasks, so the second is refused. The lock is
`flock` on `<store>.lock`, which the kernel drops when its holder's file is closed, also when the holder is
SIGKILLed: a restarted daemon takes its store back at once, with no stale-lock cleanup. The sidecar file is
never deleted (deleting it would let two processes each lock a different file of the same name); it only
says who holds it, for the message the next one gets.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

from worker_abstraction.errors import StoreInUseError

_HOLDER_BYTES = 512


class StoreLock:
    """An exclusive, non-blocking lock on the task store at `path`, held by this process until released.

    A store SQLite keeps in memory (`:memory:`, `""`, a `file:` URI with `mode=memory`) is private to its
    connection, so there is nothing to lock and acquire() does nothing.

    Args:
        path: the store's path, as given to SQLite.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        database = database_file(self.path)
        # Resolved, so two spellings of one store (a symlink, a relative path) meet on one lock file.
        self.lock_path = None if database is None else f"{Path(database).resolve()}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this lock holds its store now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the store, or fail at once if another holder has it (nothing of the store is touched then).

        Raises:
            StoreInUseError: another lock holds the store; `holder` says who ("PID <pid> on host <host>").
        """
        if self.lock_path is None or self._fd is not None:
            return
        # Opened, never truncated on open: the holder's text stays readable for whoever is refused.
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Empty only while a new holder is between flock and write.
                holder = " ".join(os.pread(fd, _HOLDER_BYTES, 0).decode(errors="replace").split())
                raise StoreInUseError(self.path, holder or "another process") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"PID {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the store go (a no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no stale holder text for a later reader
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def database_file(path: str) -> str | None:
    """The file SQLite opens for `path`, or None when it keeps the database in memory."""
    if path in ("", ":memory:"):
        return None
    if not path.startswith("file:"):
        return path
    # A URI (SQLite reads them when built with SQLITE_USE_URI, as most distributions' builds are).
    uri = urlsplit(path)
    if uri.path in ("", ":memory:") or "memory" in parse_qs(uri.query).get("mode", []):
        return None
    return unquote(uri.path)
