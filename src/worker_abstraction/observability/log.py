"""Process-wide logging set-up: one stderr handler on the root logger."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_HANDLER_NAME = "worker_abstraction.observability.log"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Keys the library passes in `extra=`; shown after the message when a record carries them.
_EXTRA_KEYS = ("worker_id", "task_id", "capability")
# Libraries whose DEBUG output is about their own internals (selectors, completion queues), not ours.
_CHATTY = ("asyncio", "grpc")


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at emit time, so swapped streams (pytest's capture) stay valid."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{key}={record.__dict__[key]}" for key in _EXTRA_KEYS if key in record.__dict__]
        return f"{text} [{' '.join(extras)}]" if extras else text


def configure(level: str = "INFO") -> None:
    """Send log records at `level` and above to stderr.

    Calling it again replaces the handler it added before instead of adding a second one. asyncio and
    grpc stay at INFO or above even at DEBUG.

    Args:
        level: A logging level name such as "DEBUG", "INFO" or "WARNING" (case-insensitive).

    Raises:
        ValueError: `level` is not a logging level name.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
