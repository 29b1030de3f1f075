"""`wa`: the parser and the dispatch to one module per subcommand."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from types import ModuleType
from typing import Any

from worker_abstraction import bearer, collector, limits
from worker_abstraction.cli import (
    UsageError,
    approve_cmd,
    cancel_cmd,
    certs_cmd,
    config_cmd,
    deny_cmd,
    dlq_cmd,
    health_cmd,
    inbox_cmd,
    limits_cmd,
    mcp_cmd,
    orchestrator_cmd,
    queue_cmd,
    registry_cmd,
    respond_cmd,
    schedule_cmd,
    submit_cmd,
    task_cmd,
    token_cmd,
    top_cmd,
    versions_cmd,
    worker_cmd,
    workers_cmd,
    workflow_cmd,
)
from worker_abstraction.cli.config import (
    LOG_LEVELS,
    ConfigError,
    Settings,
    add_config_argument,
    config_argument,
    to_bool,
)
from worker_abstraction.cli.credentials import authenticator_of
from worker_abstraction.cli.tls import tls_of
from worker_abstraction.errors import PermissionDeniedError, WorkerAbstractionError
from worker_abstraction.observability import log

EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

_COMMANDS: tuple[ModuleType, ...] = (
    registry_cmd,
    worker_cmd,
    orchestrator_cmd,
    submit_cmd,
    cancel_cmd,
    respond_cmd,
    approve_cmd,
    deny_cmd,
    inbox_cmd,
    task_cmd,
    workers_cmd,
    health_cmd,
    queue_cmd,
    limits_cmd,
    versions_cmd,
    top_cmd,
    dlq_cmd,
    workflow_cmd,
    schedule_cmd,
    config_cmd,
    certs_cmd,
    token_cmd,
    mcp_cmd,
)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in the epilog as written and shows each flag's default when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default in (None, "", [], False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The `wa` parser; flag defaults come from `settings` (default: `WA_*` variables and the config file now).

    Raises:
        ConfigError: (without `settings`) the config file cannot be used.
    """
    settings = settings if settings is not None else Settings.load(os.environ)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=settings.default("log_level"),
        help=settings.help("log_level", "log level on stderr")
        + " (default: INFO for registry/worker/orchestrator, WARNING otherwise)",
    )
    common.add_argument(
        "--log-format",
        type=str.lower,
        choices=log.FORMATS,
        default=settings.default("log_format"),
        help=settings.help("log_format", "log lines on stderr: text, or one JSON object per line"),
    )
    common.add_argument(
        "--max-message-mb",
        type=float,
        metavar="MIB",
        default=settings.default("max_message_mb"),
        help=settings.help("max_message_mb", "the largest message any part sends or receives, in MiB"),
    )
    _add_tls_arguments(common, settings)
    _add_auth_arguments(common, settings)
    add_config_argument(common, documented_default=False)
    parser = argparse.ArgumentParser(
        prog="wa",
        description="worker-abstraction: run a registry, workers and an orchestrator; submit tasks; inspect.",
        epilog="Run `wa COMMAND --help` for the flags and an example of each command. Every flag marked "
        "[env WA_X, config x] may also be set by that environment variable or by key x in the config file "
        "(flag > env > file > default); `wa config show` prints what is in effect.",
        formatter_class=_HelpFormatter,
    )
    add_config_argument(parser, documented_default=True)
    parser.set_defaults(settings=settings)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        sub = subparsers.add_parser(
            module.NAME,
            help=module.SUMMARY,
            description=module.__doc__,
            epilog=module.EPILOG,
            formatter_class=_HelpFormatter,
            parents=[common],
        )
        module.add_arguments(sub, settings)
        _share_common_options(sub, common)
        sub.set_defaults(
            run=module.run, default_log_level=module.DEFAULT_LOG_LEVEL, uses_tls=getattr(module, "USES_TLS", True)
        )
    return parser


def _add_tls_arguments(common: argparse.ArgumentParser, settings: Settings) -> None:
    for key, flag, text in (
        ("tls_cert", "--tls-cert", "TLS certificate (PEM): a server's identity, a client's under mTLS"),
        ("tls_key", "--tls-key", "private key (PEM) of --tls-cert"),
        ("tls_ca", "--tls-ca", "CA certificate (PEM) verifying servers, and clients under --tls-client-auth"),
    ):
        common.add_argument(flag, metavar="PATH", default=settings.default(key), help=settings.help(key, text))
    common.add_argument(
        "--tls-client-auth",
        action="store_true",
        default=settings.default("tls_client_auth"),
        help=settings.help("tls_client_auth", "servers: require client certificates signed by --tls-ca (mTLS)"),
    )


def _add_auth_arguments(common: argparse.ArgumentParser, settings: Settings) -> None:
    common.add_argument(
        "--token",
        metavar="TOKEN",
        default=settings.default("token"),
        help=settings.help(
            "token",
            "bearer token sent to every server (prefer WA_TOKEN: flags show in ps; a leading - needs --token=T)",
        ),
    )
    common.add_argument(
        "--auth-tokens",
        metavar="PATH",
        default=settings.default("auth_tokens"),
        help=settings.help("auth_tokens", "servers: check every caller against this token file (TOML)"),
    )
    common.add_argument(
        "--require-tls",
        action="store_true",
        default=settings.default("require_tls"),
        help=settings.help(
            "require_tls", "refuse to start a server, or to connect, without TLS (tokens never cross in plaintext)"
        ),
    )


def reader_gone() -> int:
    """Stdout's reader left (`wa task list | head`): end quietly, as a program killed by SIGPIPE would.

    Returns:
        EXIT_BROKEN_PIPE, the code a shell shows for a pipeline's SIGPIPEd writer.
    """
    try:
        # Whatever is still buffered goes nowhere, so the flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no file (e.g. captured in a test)
        pass
    return EXIT_BROKEN_PIPE


def _share_common_options(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """The common options on the actions of a subcommand too (`wa task get ID --config PATH`).

    Their defaults are suppressed there, so a value given before the action is not overwritten.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for nested in action.choices.values():
                for option in common._actions:
                    if isinstance(option, argparse._StoreTrueAction):
                        nested.add_argument(
                            *option.option_strings, action="store_true", default=argparse.SUPPRESS, help=option.help
                        )
                        continue
                    nested.add_argument(
                        *option.option_strings,
                        type=option.type,
                        choices=option.choices,
                        metavar=option.metavar,
                        default=argparse.SUPPRESS,
                        help=option.help,
                    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop (a dependency wherever it installs) unless WA_LOOP=asyncio; asyncio's loop without it."""
    if os.environ.get("WA_LOOP", "auto") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    """Run `wa` with `argv` (default: `sys.argv[1:]`) and return the process exit code."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a reader that left shows here, not as a traceback at exit
    except BrokenPipeError:
        return reader_gone()
    return code


# The commands that install a TracerProvider when the OTEL_* variables ask for one (see tracing_setup).
_TRACED = frozenset({"registry", "worker", "orchestrator", "submit"})
# The long-running commands, whose process is set for many small tasks (see `collector`).
_DAEMONS = frozenset({"registry", "worker", "orchestrator"})


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings.load(os.environ, config_argument(argv))
    except ConfigError as exc:
        print(f"wa: error: {exc}", file=sys.stderr)
        return 2
    try:
        args = build_parser(settings).parse_args(argv)
    except SystemExit as exc:  # --help and usage errors; keep `main` returning the code
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    name: str = args.command
    run: Command = args.run
    try:
        log.configure(args.log_level or args.default_log_level, str(args.log_format).lower())
        if name in _TRACED:
            from worker_abstraction.observability import tracing_setup  # the OpenTelemetry SDK: only here

            tracing_setup.configure(f"wa-{name}", os.environ)
        limits.set_max_message_bytes(int(float(args.max_message_mb) * 2**20))
        if args.uses_tls:
            tls = tls_of(args)  # checked before the command runs, so unusable TLS files are a usage error (2)
            if tls is None and to_bool(args.require_tls):
                raise ValueError(
                    "--require-tls (WA_REQUIRE_TLS) is set and no TLS is configured: give --tls-ca (and, for a "
                    "server, --tls-cert and --tls-key), or drop --require-tls"
                )
            bearer.use_token(args.token)
            authenticator_of(args)  # (likewise an unusable token file)
        if name in _DAEMONS:
            collector.tune()
    except ValueError as exc:  # a bad WA_LOG_LEVEL, limit or TLS file: argparse checks flags, not defaults
        print(f"wa {name}: error: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(run(args))
    except UsageError as exc:
        print(f"wa {name}: error: {exc}", file=sys.stderr)
        return 2
    except PermissionDeniedError as exc:  # credentials refused: as a usage error, the call must change
        print(f"wa {name}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except WorkerAbstractionError as exc:  # e.g. a port already in use, a registration the registry refuses
        print(f"wa {name}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
