"""`wa` in-process: help text, parameter parsing and usage errors (no servers started)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker_abstraction.cli import UsageError
from worker_abstraction.cli.main import main
from worker_abstraction.cli.params import Given, settle
from worker_abstraction.cli.submit_cmd import FromFile, parse_param
from worker_abstraction.cli.worker_cmd import load_worker_class
from worker_abstraction.types import CapabilitySpec, ParameterSpec

E2E_DIR = Path(__file__).resolve().parents[1] / "e2e"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main` configures the root logger as a process would; give it back as it was."""
    loggers = [logging.getLogger(name) for name in ("", "asyncio", "grpc")]
    saved = [(logger, list(logger.handlers), logger.level) for logger in loggers]
    yield
    for logger, handlers, level in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("registry", ["--host", "--port", "--ttl", "--suspect-after", "--sweep-interval", "WA_SUSPECT_AFTER"]),
        ("worker", ["WORKER", "--registry", "--advertise-host", "--tag", "--grace", "WA_REGISTRY", "example"]),
        (
            "submit",
            [
                "CAPABILITY",
                "--param",
                "plain string",
                "--timeout",
                "exit codes",
                "example",
                "--json",
                "--detach",
                "--idempotency-key",
                "--retries",
                "--retry-task-errors",
                "--queue-timeout",
                "@-",
                "130",
                "141",
            ],
        ),
        ("config", ["show", "wa.toml", "WA_CONFIG", "flag > environment variable > config file", "example"]),
        ("workers", ["--registry", "--json", "LAST HEARTBEAT".lower(), "state_reason", "SUSPECT", "example"]),
        ("health", ["ADDRESS", "--service", "--watch", "--timeout", "SERVICE_UNKNOWN", "exit codes", "130", "example"]),
    ],
)
def test_each_subcommand_has_help_with_its_flags_and_an_example(
    command: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.lower().split())
    missing = [word for word in expected if word.lower() not in text]
    assert not missing, text


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in ("registry", "worker", "submit", "workers"))


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("n=3", ("n", 3)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("flag=true", ("flag", True)),
        ("nothing=null", ("nothing", None)),
        ('opts={"a": [1, 2]}', ("opts", {"a": [1, 2]})),
        ('quoted="3"', ("quoted", "3")),
        ("text=hello world", ("text", "hello world")),
        ("empty=", ("empty", "")),
        ("expr=a=b", ("expr", "a=b")),
        ("doc=@notes.json", ("doc", FromFile("notes.json"))),
        ("doc=@-", ("doc", FromFile("-"))),
        ('at="@home"', ("at", "@home")),  # a string that starts with @ is quoted as JSON
    ],
)
def test_param_values_are_json_or_else_plain_strings(argument: str, expected: tuple[str, object]) -> None:
    key, given = parse_param(argument)
    assert (key, given.value if isinstance(given, Given) else given) == expected


def test_a_value_a_string_parameter_takes_stays_the_text_typed() -> None:
    spec = CapabilitySpec(
        "greet",
        "",
        (ParameterSpec("name", "string"), ParameterSpec("times", "integer"), ParameterSpec("extra", "any")),
    )
    params = dict(parse_param(a) for a in ("name=42", "times=3", "extra=true", "other=null"))
    assert settle(params, spec) == {"name": "42", "times": 3, "extra": True, "other": None}
    assert settle(params, None) == {"name": 42, "times": 3, "extra": True, "other": None}  # (nothing known)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["registry", "--port", "not-a-port"],
        ["registry", "--ttl", "soon"],
        ["registry", "--no-such-flag"],
        ["worker"],
        ["submit"],
        ["submit", "shout", "--param", "no-equals-sign"],
        ["submit", "shout", "--param", "=value"],
        ["submit", "shout", "--timeout", "x"],
        ["workers", "--log-level", "LOUD"],
        ["submit", "shout", "--param", "doc=@"],
        ["submit", "shout", "--retries", "-1"],
        ["submit", "shout", "--queue-timeout", "soon"],
    ],
)
def test_bad_arguments_exit_2_with_usage_on_stderr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: wa" in capsys.readouterr().err


def test_suspect_after_not_below_the_ttl_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "--port", "0", "--ttl", "2", "--suspect-after", "2"]) == 2
    assert "wa registry: error: suspect_after_seconds" in capsys.readouterr().err


def test_a_repeated_param_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["submit", "shout", "--param", "text=a", "--param", "text=b", "--registry", "127.0.0.1:1"]
    assert main(argv) == 2
    assert "more than once" in capsys.readouterr().err


@pytest.mark.parametrize(
    "spec",
    ["no_colon", "_workers:", ":EchoWorker", "no_such_module_xyz:Thing", "_workers:Missing", "_workers:NotAWorker"],
)
def test_a_bad_worker_spec_exits_2_before_serving(
    spec: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(E2E_DIR)
    monkeypatch.syspath_prepend(str(E2E_DIR))  # undone after the test, unlike the CLI's own insertion
    assert main(["worker", spec, "--registry", ""]) == 2
    assert "wa worker: error:" in capsys.readouterr().err


def test_flag_defaults_come_from_wa_environment_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WA_REGISTRY", "10.1.2.3:6000")
    monkeypatch.setenv("WA_TTL", "7.5")
    assert main(["workers", "--help"]) == 0
    assert "10.1.2.3:6000" in capsys.readouterr().out
    assert main(["registry", "--help"]) == 0
    assert "default: 7.5" in capsys.readouterr().out


def test_a_bad_log_level_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WA_LOG_LEVEL", "LOUD")
    assert main(["workers", "--registry", "127.0.0.1:1"]) == 2
    assert "unknown log level" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["-p", "text=@no/such/file.json"], ["parameter 'text'", "no such file no/such/file.json"]),
        (["-p", "a=@-", "-p", "b=@-"], ["only one parameter can be read from stdin", "a, b"]),
        (["--detach"], ["--detach needs an orchestrator daemon"]),
    ],
)
def test_submit_usage_errors_exit_2_before_anything_runs(
    argv: list[str], named: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WA_ORCHESTRATOR", raising=False)
    monkeypatch.setenv("WA_CONFIG", "")
    # Port 1: nothing listens there, so anything that tried to connect would fail differently.
    assert main(["submit", "shout", *argv, "--registry", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wa submit: error: ") and all(word in err for word in named), err


def test_retries_past_the_most_attempts_is_not_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "shout", "--retries", "100", "--orchestrator", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "InvalidTaskOptionsError" in err and "max_attempts must be 1..100" in err


def test_a_worker_loads_from_a_file_and_a_broken_module_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine.py").write_text(
        "from worker_abstraction import BaseWorker, capability\n"
        "class Greeter(BaseWorker):\n"
        "    @capability\n"
        "    async def greet_from_file(self, name: str) -> str:\n"
        '        """Hi."""\n'
        "        return name\n"
    )
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    loaded = load_worker_class(f"{tmp_path / 'mine.py'}:Greeter")
    assert loaded.__name__ == "Greeter" and "greet_from_file" in loaded.capabilities
    with pytest.raises(UsageError) as broken:
        load_worker_class(f"{tmp_path / 'broken.py'}:Greeter")
    assert "ZeroDivisionError" in str(broken.value) and "broken.py:1" in str(broken.value)
    assert main(["worker", f"{tmp_path / 'broken.py'}:Greeter", "--registry", ""]) == 2
    assert "Traceback" not in capsys.readouterr().err
