"""What `wa` processes print on stderr: the format `log.configure` installs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from worker_abstraction.observability import log
from worker_abstraction.types import TaskFailure
from worker_abstraction.worker import tasklog
from worker_abstraction.worker.tasks import TaskRecord as WorkerTaskRecord

logger = logging.getLogger("worker_abstraction.tests")


@pytest.fixture
def configured() -> Iterator[None]:
    touched = [logging.getLogger(name) for name in ("", "asyncio", "grpc")]  # what configure() sets levels on
    levels, handlers = [each.level for each in touched], list(touched[0].handlers)
    log.configure("INFO")
    yield
    for handler in touched[0].handlers:
        if handler not in handlers:
            touched[0].removeHandler(handler)
    for each, level in zip(touched, levels, strict=True):
        each.setLevel(level)


def test_extras_the_message_does_not_show_follow_it_in_brackets(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logger.info("worker is busy", extra={"task_id": "t-1", "capability": "echo"})
    assert capsys.readouterr().err.rstrip().endswith("worker is busy [task_id=t-1 capability=echo]")


def test_extras_the_message_shows_already_are_not_repeated(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logger.info("task %s[%s] received", "echo", "t-1", extra={"task_id": "t-1", "capability": "echo"})
    logger.info("task %s refused", "t-2", extra={"task_id": "t-2", "capability": "echo"})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("task echo[t-1] received")
    assert lines[1].endswith("task t-2 refused [capability=echo]")


def test_extras_come_before_the_traceback(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it broke", extra={"task_id": "t-1"})
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.endswith("it broke [task_id=t-1]")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


@pytest.fixture
def configured_json(configured: None) -> None:
    log.configure("INFO", "json")  # (replaces the text handler `configured` installed; it removes ours after)


def test_json_lines_carry_the_task_fields_and_the_traceback(
    configured_json: None, capsys: pytest.CaptureFixture[str]
) -> None:
    record = WorkerTaskRecord("t-1", "echo", "w-1", attempt=2)
    tasklog.received(record)
    try:
        raise ValueError("boom")
    except ValueError as error:
        tasklog.failed(record, TaskFailure("ValueError", "boom"), 0.25, error)
    logger.warning("plain line")
    received, failed, plain = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert received["message"] == "task echo[t-1] received (attempt 2)" and received["level"] == "INFO"
    for line in (received, failed):
        assert (line["task_id"], line["worker_id"], line["attempt"], line["capability"]) == ("t-1", "w-1", 2, "echo")
    assert failed["level"] == "ERROR" and failed["exception"].startswith("Traceback (most recent call last):")
    assert failed["exception"].endswith("ValueError: boom")
    assert datetime.fromisoformat(plain["time"]).tzinfo is not None
    assert plain["logger"] == "worker_abstraction.tests" and "task_id" not in plain


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        log.configure("INFO", "xml")


async def test_a_workers_task_lines_are_written_together_at_the_end_of_the_loop_turn_in_order(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    record = WorkerTaskRecord("t-1", "echo", "w-1", attempt=1)
    tasklog.received(record)
    tasklog.succeeded(record, 0.002)
    assert capsys.readouterr().err == ""  # kept until this turn of the loop ends
    await asyncio.sleep(0)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["task echo[t-1] received (attempt 1)"]
    # "succeeded" is made two turns later (the task's answer, queued with it, goes first), then written at the
    # end of that turn.
    for _ in range(3):
        await asyncio.sleep(0)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["task echo[t-1] succeeded in 2.00 ms"]
    tasklog.received(record)
    logger.warning("something else")  # any other line writes those waiting first
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("task echo[t-1] received (attempt 1)") and lines[1].endswith("something else")
    tasklog.received(record)
    for handler in logging.getLogger().handlers:
        handler.flush()  # as logging.shutdown does at exit
    assert capsys.readouterr().err.rstrip().endswith("task echo[t-1] received (attempt 1)")


def test_task_lines_logged_without_a_running_loop_are_written_at_once(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    tasklog.received(WorkerTaskRecord("t-2", "echo", "w-1", attempt=2))
    assert capsys.readouterr().err.rstrip().endswith("task echo[t-2] received (attempt 2)")
