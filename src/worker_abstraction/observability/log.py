"""Process-wide logging set-up: one stderr handler on the root logger."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_HANDLER_NAME = "worker_abstraction.observability.log"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Keys the library passes in `extra=`; shown after the message when a record carries them and the message
# does not already show their values.
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
    def formatMessage(self, record: logging.LogRecord) -> str:
        # Extras go after the message, before any traceback, and only those the message does not show already
        # (a task line names its task and capability): once per line is enough for a reader or a grep.
        text = super().formatMessage(record)
        fields = record.__dict__
        extras = [
            f"{key}={fields[key]}" for key in _EXTRA_KEYS if key in fields and str(fields[key]) not in record.message
        ]
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
