"""The config file: where it is found, what it may hold, its place in flag > env > file > default, `wa config show`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker_abstraction import limits
from worker_abstraction.cli.config import SETTINGS, Settings
from worker_abstraction.cli.main import build_parser, main


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No WA_* variable from the outside, the current directory empty, logging given back as it was."""
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("WA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, object]]:
    assert main([*argv, "config", "show", "--json"]) == 0, capsys.readouterr().err
    settings: dict[str, dict[str, object]] = json.loads(capsys.readouterr().out)["settings"]
    return settings


def test_wa_toml_in_the_current_directory_sets_the_defaults_of_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wa.toml").write_text(
        'registry = "10.0.0.5:6000"\norchestrator = "10.0.0.5:6001"\ntask_timeout = 300\n'
        'orchestrator_port = 7000\nstore = "tasks.db"\nmax_queued = 5\naging = 2.5\nregistry_host = "0.0.0.0"\n'
    )
    parser = build_parser(Settings.load({}))
    submit = parser.parse_args(["submit", "shout"])
    assert (submit.registry, submit.orchestrator, submit.timeout) == ("10.0.0.5:6000", "10.0.0.5:6001", 300.0)
    daemon = parser.parse_args(["orchestrator"])
    assert (daemon.port, daemon.store, daemon.max_queued, daemon.aging) == (7000, "tasks.db", 5, 2.5)
    assert daemon.registry == "10.0.0.5:6000"
    assert parser.parse_args(["registry"]).host == "0.0.0.0"
    assert parser.parse_args(["task", "list"]).orchestrator == "10.0.0.5:6001"
    assert parser.parse_args(["workers"]).registry == "10.0.0.5:6000"

    assert main(["submit", "--help"]) == 0
    # --help shows what the command would use
    assert "default: 10.0.0.5:6001" in " ".join(capsys.readouterr().out.split())


def test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wa.toml").write_text('registry = "file:1"\norchestrator = "file:2"\ntask_timeout = 5\n')
    monkeypatch.setenv("WA_ORCHESTRATOR", "env:2")
    monkeypatch.setenv("WA_TASK_TIMEOUT", "7")
    args = build_parser().parse_args(["submit", "shout", "--timeout", "9"])
    assert args.timeout == 9.0  # flag
    assert args.orchestrator == "env:2"  # env over file
    assert args.registry == "file:1"  # file over default
    assert args.wait == 3.0  # default


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_flag_before_or_after_the_subcommand(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wa.toml").write_text('registry = "cwd:1"\n')
    other = tmp_path / "elsewhere.toml"
    other.write_text('registry = "other:1"\n')
    argv = ["--config", str(other), "config", "show", "--json"]
    if where == "after":
        argv = ["config", "show", "--json", "--config", str(other)]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["config_file"] == str(other.resolve())
    assert document["settings"]["registry"] == {"value": "other:1", "from": f"file {other.resolve()}"}


def test_wa_config_names_the_file_and_an_empty_one_turns_wa_toml_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wa.toml").write_text('registry = "cwd:1"\n')
    named = tmp_path / "named.toml"
    named.write_text('registry = "named:1"\n')
    monkeypatch.setenv("WA_CONFIG", str(named))
    assert show(capsys)["registry"]["value"] == "named:1"
    monkeypatch.setenv("WA_CONFIG", "")
    assert show(capsys)["registry"] == {"value": "127.0.0.1:50051", "from": "default"}


def test_config_show_prints_each_setting_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wa.toml").write_text('registry = "file:1"\nttl = 12\n')
    monkeypatch.setenv("WA_TTL", "4.5")
    assert main(["config", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"config file: {(tmp_path / 'wa.toml').resolve()} (from ./wa.toml)"
    assert lines[1].split() == ["KEY", "VALUE", "FROM"]
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[2:]}
    assert rows.keys() == {s.key for s in SETTINGS}
    assert rows["registry"] == ["file:1", f"file {(tmp_path / 'wa.toml').resolve()}"]
    assert rows["ttl"] == ["4.5", "env WA_TTL"]
    assert rows["max_queued"] == ["100000", "default"]
    assert rows["orchestrator"] == ["-", "default"]


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('regsitry = "x:1"\n', ["'regsitry'", "did you mean 'registry'"]),
        ('registry_port = "8080"\n', ["'registry_port'", "expected an integer"]),
        ("max_queued = 1.5\n", ["'max_queued'", "expected an integer"]),
        ("aging = true\n", ["'aging'", "expected a number"]),
        ('log_level = "loud"\n', ["'log_level'", "DEBUG"]),
        ("[registry]\nhost = 1\n", ["'registry'", "expected a string"]),
        ('bogus = 1\nttl = "soon"\n', ["'bogus'", "'ttl'"]),  # every problem, not only the first
        ("registry = \n", ["not valid TOML"]),
    ],
)
def test_an_unusable_file_exits_2_naming_the_file_and_the_key(
    content: str, named: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wa.toml"
    path.write_text(content)
    assert main(["workers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wa: error: config file {path}")
    assert all(word in err for word in named), err


def test_a_config_file_that_does_not_exist_exits_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", "missing.toml", "workers"]) == 2
    assert "config file missing.toml (from --config) does not exist" in capsys.readouterr().err
    monkeypatch.setenv("WA_CONFIG", "gone.toml")
    assert main(["workers"]) == 2
    assert "config file gone.toml (from env WA_CONFIG) does not exist" in capsys.readouterr().err


def test_config_show_refuses_an_environment_value_that_does_not_fit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WA_REGISTRY_PORT", "http")
    assert main(["config", "show"]) == 2
    assert "registry_port (env WA_REGISTRY_PORT): expected an integer, got 'http'" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "words"), [("0.01", "at least"), ("4096", "at most")])
def test_a_message_limit_gRPC_cannot_keep_exits_2_naming_the_bound(
    value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workers", "--max-message-mb", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wa workers: error: a message limit must be") and words in err, err


def test_the_message_limit_comes_from_the_flag_or_the_file_and_applies_to_the_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        (tmp_path / "wa.toml").write_text("max_message_mb = 64\n")
        assert show(capsys)["max_message_mb"]["value"] == 64.0
        assert limits.max_message_bytes() == 64 * 2**20
        assert main(["config", "show", "--max-message-mb", "0.5"]) == 0
        assert limits.max_message_bytes() == 2**19
    finally:
        limits.set_max_message_bytes(limits.DEFAULT_MAX_MESSAGE_BYTES)
