"""The settings every `wa` command starts from: flag > `WA_*` environment variable > config file > default.

The config file is TOML, found as `--config PATH` (before or after the subcommand), else `WA_CONFIG`, else
`wa.toml` in the current directory when there is one (an empty `WA_CONFIG` turns that off). Each key is the
name of a `WA_*` variable in lower case without the prefix (`registry` is `WA_REGISTRY`, `task_timeout` is
`WA_TASK_TIMEOUT`), so a value moves between the three places unchanged. A key this table does not know,
or a value of the wrong type, is a usage error naming the key and the file.

A flag's default is the value found here, so `--help` shows what a command would use; a flag given on the
command line overrides it.
"""

from __future__ import annotations

import argparse
import difflib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_ENV = "WA_CONFIG"
CONFIG_FILE = "wa.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and every bad key."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its file key, its type, its built-in default (as a flag would take it), what it sets."""

    key: str
    kind: type[str] | type[int] | type[float] | type[bool]
    default: str | None
    about: str
    choices: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return "WA_" + self.key.upper()

    def check(self, value: Any) -> tuple[Any, str]:
        """`(value, "")` converted to this setting's type, or `(None, problem)`."""
        if self.kind is bool:
            return _boolean(value)
        if isinstance(value, str) and self.kind is not str:
            try:
                value = self.kind(value)
            except ValueError:
                return None, f"expected {_TYPE_NAMES[self.kind]}, got {value!r}"
        ok = isinstance(value, self.kind) or (self.kind is float and isinstance(value, int))
        if isinstance(value, bool) or not ok:
            return None, f"expected {_TYPE_NAMES[self.kind]}, got {_toml_type(value)} {value!r}"
        value = self.kind(value)
        if self.choices and str(value).upper() not in self.choices:
            return None, f"expected one of {', '.join(self.choices)}, got {value!r}"
        return value, ""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "registry",
        str,
        "127.0.0.1:50051",
        "registry address; a comma-separated list of replicas (host:a,host:b) is tried in order",
    ),
    Setting(
        "orchestrator",
        str,
        None,
        "orchestrator daemon address (unset: `wa submit` runs an orchestrator in its own process, "
        "the daemon's commands use 127.0.0.1:50052)",
    ),
    Setting("log_level", str, None, "log level on stderr (unset: INFO for daemons, WARNING otherwise)", LOG_LEVELS),
    Setting("log_format", str, "text", "log lines on stderr: text, or one JSON object per line", ("TEXT", "JSON")),
    Setting(
        "max_message_mb",
        float,
        "32",
        "the largest message (task arguments or output) every part sends or receives, in MiB; all must agree",
    ),
    Setting(
        "metrics_port",
        int,
        None,
        "wa registry/worker/orchestrator: serve Prometheus metrics on this port of the server's host "
        "(0: a free one; unset: no metrics)",
    ),
    Setting("task_timeout", float, "3600", "wa submit: seconds the task's handler may run (0: no limit)"),
    Setting("wait", float, "3", "wa submit: seconds to wait for a capable worker (in-process orchestrator)"),
    Setting("registry_host", str, "127.0.0.1", "wa registry: interface to listen on"),
    Setting("registry_port", int, "50051", "wa registry: port to listen on"),
    Setting("ttl", float, "30", "wa registry: seconds without a heartbeat before eviction"),
    Setting("suspect_after", float, None, "wa registry: seconds without a heartbeat before SUSPECT"),
    Setting("sweep_interval", float, None, "wa registry: seconds between eviction sweeps"),
    Setting(
        "registry_store",
        str,
        "memory",
        "wa registry: where workers are kept: memory, or nats://HOST:PORT[,nats://...] (a JetStream KV bucket "
        "several registry replicas share)",
    ),
    Setting("nats_creds", str, None, "wa registry/orchestrator: NATS credentials file for --store nats://"),
    Setting("nats_tls_ca", str, None, "wa registry/orchestrator: CA file the NATS servers' certificates must chain to"),
    Setting("orchestrator_host", str, "127.0.0.1", "wa orchestrator: interface to listen on"),
    Setting("orchestrator_port", int, "50052", "wa orchestrator: port to listen on"),
    Setting(
        "store",
        str,
        "wa-orchestrator.db",
        "wa orchestrator: SQLite task store (':memory:' keeps nothing) or nats://...",
    ),
    Setting(
        "nats_home",
        str,
        "partitioned",
        "wa orchestrator: with store nats://..., how the daemons share tasks: partitioned (each daemon leases a "
        "share of 32 partitions; the only way now, kept so that configurations naming it still work)",
        ("PARTITIONED",),
    ),
    Setting("max_queued", int, "100000", "wa orchestrator: tasks that may wait for a worker"),
    Setting(
        "http_port",
        int,
        None,
        "wa orchestrator: serve the web dashboard on this port of --host (0: a free one; unset: no dashboard)",
    ),
    Setting("aging", float, "10", "wa orchestrator: seconds per priority level a waiting task gains"),
    Setting("worker_host", str, "127.0.0.1", "wa worker: interface to listen on"),
    Setting("worker_port", int, "0", "wa worker: port to listen on (0: a free one)"),
    Setting("advertise_host", str, None, "wa worker: host put in the registered address"),
    Setting("worker_name", str, None, "wa worker: worker name"),
    Setting("worker_id", str, None, "wa worker: stable worker id"),
    Setting("heartbeat_interval", float, None, "wa worker: seconds between heartbeats"),
    Setting("max_concurrent", int, None, "wa worker: task slots"),
    Setting("grace", float, "10", "wa worker: seconds running tasks get to finish on SIGINT/SIGTERM"),
    Setting(
        "tls_cert",
        str,
        None,
        "TLS certificate (PEM): a server's identity, and a client's under mTLS; needs tls_key (unset: plaintext)",
    ),
    Setting("tls_key", str, None, "the private key (PEM) of tls_cert"),
    Setting("tls_ca", str, None, "CA certificate (PEM) verifying servers, and clients under mTLS; turns TLS on"),
    Setting("tls_client_auth", bool, None, "servers: require client certificates signed by tls_ca (mTLS)"),
    Setting("token", str, None, "the bearer token this command sends to every server (unset: none)"),
    Setting("auth_tokens", str, None, "servers: TOML file of principals and their tokens; turns checking on"),
    Setting(
        "require_tls",
        bool,
        None,
        "refuse to run without TLS: a server to start, a client to connect (tokens never cross in plaintext)",
    ),
)
_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Value:
    """A setting's value before flags (text from the environment or a default, typed from the file) and its source."""

    value: Any
    source: str  # "default", "env WA_...", or "file PATH"


class Settings:
    """The value of every setting before flags, and where each came from."""

    def __init__(self, values: Mapping[str, Value], file: Path | None = None, file_source: str = "") -> None:
        self.values = dict(values)
        self.file = file
        self.file_source = file_source

    @classmethod
    def load(cls, environ: Mapping[str, str], config: str | None = None, cwd: Path | None = None) -> Settings:
        """The settings from `environ` and the config file (`config`, else WA_CONFIG, else ./wa.toml).

        Raises:
            ConfigError: the file named cannot be read, is not TOML, has an unknown key or a wrong type.
        """
        file, file_source = _find_file(environ, config, cwd or Path.cwd())
        from_file = _read(file) if file is not None else {}
        values: dict[str, Value] = {}
        for setting in SETTINGS:
            if setting.env in environ:
                values[setting.key] = Value(environ[setting.env], f"env {setting.env}")
            elif setting.key in from_file:
                values[setting.key] = Value(from_file[setting.key], f"file {file}")
            else:
                values[setting.key] = Value(setting.default, "default")
        return cls(values, file, file_source)

    def default(self, key: str) -> Any:
        """The value a flag takes when it is not given."""
        return self.values[key].value

    @staticmethod
    def help(key: str, text: str) -> str:
        """A flag's help with where else its value may come from."""
        return f"{text} [env {_BY_KEY[key].env}, config {key}]"

    def checked(self) -> tuple[dict[str, Any], list[str]]:
        """Every value converted to its type (environment values are text), and the problems found."""
        converted: dict[str, Any] = {}
        problems = []
        for setting in SETTINGS:
            found = self.values[setting.key]
            value, problem = (None, "") if found.value is None else setting.check(found.value)
            converted[setting.key] = value
            if problem:
                problems.append(f"{setting.key} ({found.source}): {problem}")
        return converted, problems


def config_argument(argv: Sequence[str]) -> str | None:
    """The `--config PATH` given anywhere on the command line (None if none), before the parser is built."""
    pre = _PreParser(add_help=False)
    pre.add_argument("--config")
    try:
        known, _ = pre.parse_known_args(list(argv))
    except _PreParseError:
        return None  # the real parser reports it
    config: str | None = known.config
    return config


def add_config_argument(parser: argparse.ArgumentParser, *, documented_default: bool) -> None:
    """`--config PATH` on `parser`; read by `config_argument` before parsing, so its value is not used here."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None if documented_default else argparse.SUPPRESS,
        help=f"TOML file of settings [env {CONFIG_ENV}] (default: ./{CONFIG_FILE} when present)",
    )


def _find_file(environ: Mapping[str, str], config: str | None, cwd: Path) -> tuple[Path | None, str]:
    if config is not None:
        source = "--config"
    elif CONFIG_ENV in environ:
        config, source = environ[CONFIG_ENV], f"env {CONFIG_ENV}"
        if not config:
            return None, source
    elif (cwd / CONFIG_FILE).is_file():
        return cwd / CONFIG_FILE, f"./{CONFIG_FILE}"
    else:
        return None, ""
    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"config file {config} (from {source}) does not exist")
    return path, source


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    problems = []
    for key, value in document.items():
        setting = _BY_KEY.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, _BY_KEY, n=1)
            problems.append(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            continue
        if isinstance(value, str) and setting.kind is not str:  # TOML has types: "8080" is not a port
            problems.append(f"key {key!r}: expected {_TYPE_NAMES[setting.kind]}, got a string {value!r}")
            continue
        checked, problem = setting.check(value)
        if problem:
            problems.append(f"key {key!r}: {problem}")
        values[key] = checked
    if problems:
        raise ConfigError(f"config file {path}: " + "; ".join(problems))
    return values


def to_bool(value: Any) -> bool:
    """A boolean setting's value (a flag's, the environment's text, the file's boolean) as a bool.

    Raises:
        ValueError: the value is no boolean.
    """
    converted, problem = _boolean(False if value is None else value)
    if problem:
        raise ValueError(problem)
    return bool(converted)


def _boolean(value: Any) -> tuple[Any, str]:
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE, ""
    return None, f"expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}"


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), "a table" if isinstance(value, dict) else type(value).__name__)


class _PreParseError(Exception):
    pass


class _PreParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # NoReturn in typeshed; raising keeps that promise
        raise _PreParseError(message)
