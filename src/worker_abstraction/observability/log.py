"""Process-wide logging set-up: one stderr handler on the root logger, as text lines or JSON objects.

Text (the default) is one line per record, `time level logger: message`, with the task and capability the
message does not show already after it in brackets. JSON (`--log-format json`) is one object per line with
`time` (ISO 8601, UTC), `level`, `logger`, `message`, the fields a record carries (`task_id`, `worker_id`,
`attempt`, `capability`, `trace_id`: every per-task line has the first three) and `exception` (the
traceback) when there is one: what a log shipper indexes without parsing text. With tracing on, a line
logged while a task's span is current carries that span's `trace_id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

from worker_abstraction.observability import tracing

_HANDLER_NAME = "worker_abstraction.observability.log"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Keys the library passes in `extra=`; shown after the message when a record carries them and the message
# does not already show their values.
_EXTRA_KEYS = ("task_id", "capability")
# The fields a JSON line carries when its record has them (a per-task line: the first three at least).
_JSON_KEYS = ("task_id", "worker_id", "attempt", "capability", "trace_id")
FORMATS = ("text", "json")
# Libraries whose DEBUG output is about their own internals (selectors, completion queues), not ours.
_CHATTY = ("asyncio", "grpc")


# A record with this attribute set (in `extra=`) may be written at the end of the event loop's turn, with the
# others of that turn, rather than at once: a worker's per-task lines (two per task, `worker.tasklog`), each
# of which cost a write to stderr of its own.
SAME_TURN = "wa_same_turn"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at emit time, so swapped streams (pytest's capture) stay valid.

    Lines of records marked `SAME_TURN`, logged on a running event loop, are kept until the end of the loop's
    turn and written together; any other record writes them first, so the order of lines never changes, and
    so does `flush()` (at exit, `logging.shutdown`). The per-task lines are logged before their handler
    runs, so a handler that takes the process down still leaves its "received" line behind.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._waiting: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # StreamHandler.emit, less its second trip through the handler's lock to flush.
        try:
            line = self.format(record) + self.terminator
            if record.__dict__.get(SAME_TURN) and self._wait(line):
                return
            self._write(line)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _wait(self, line: str) -> bool:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (no loop on this thread: written at once)
            return False
        if not self._waiting:
            loop.call_soon(self.flush)
        self._waiting.append(line)
        return True

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # (createLock made it)
            self._write("")

    def _write(self, line: str) -> None:
        """The lines waiting for the end of the turn, then `line`, in one write (the lock is held)."""
        self.stream = stream = sys.stderr
        if self._waiting:
            line = "".join(self._waiting) + line
            self._waiting.clear()
        if line:
            stream.write(line)
        stream.flush()


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The date and time to the second change once a second, not once a line: made once and reused.
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)  # (which calls formatMessage below, then adds the traceback)
        # The common line (a worker logs two per task): what the base class does, without asking the format
        # string whether it shows the time, or looking for a traceback to add, on every record.
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        return self.formatMessage(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # `_FORMAT`, as an f-string. Extras go after the message, before any traceback, and only those the
        # message does not show already (a task line names its task and capability): once per line is enough
        # for a reader or a grep.
        text = f"{record.asctime} {record.levelname:<7} {record.name}: {record.message}"
        fields = record.__dict__
        extras = [
            f"{key}={fields[key]}" for key in _EXTRA_KEYS if key in fields and str(fields[key]) not in record.message
        ]
        return f"{text} [{' '.join(extras)}]" if extras else text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in _JSON_KEYS:
            if key in fields:
                entry[key] = fields[key]
        if "trace_id" not in entry and tracing.enabled():  # a line logged inside a task's span
            trace_id = tracing.current_trace_id()
            if trace_id is not None:
                entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str = "INFO", log_format: str = "text") -> None:
    """Send log records at `level` and above to stderr, as text lines or (`log_format="json"`) JSON objects.

    Calling it again replaces the handler it added before instead of adding a second one. asyncio and
    grpc stay at INFO or above even at DEBUG. Records no longer look up their caller's file and line,
    thread or process (the format shows none of them): this is meant for the `wa` processes.

    Args:
        level: A logging level name such as "DEBUG", "INFO" or "WARNING" (case-insensitive).
        log_format: "text" or "json".

    Raises:
        ValueError: `level` is not a logging level name, or `log_format` not one of `FORMATS`.
    """
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; expected one of {', '.join(FORMATS)}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    # The format shows none of these, and a worker logs two lines per task: each record skips looking up
    # its caller's frame, thread and process (the logging documentation's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            handler.flush()
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
