"""What `wa` processes print on stderr: the format `log.configure` installs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from worker_abstraction.observability import log

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
