"""Show the settings every `wa` command starts from, and where each came from.

  wa config show [--json]   the config file in use, then one line per setting: KEY, VALUE and FROM
                            (default, env WA_X, or file PATH); `-` for a setting left unset

Precedence is flag > environment variable > config file > built-in default: a flag given to a command
overrides what is shown here. The config file is `--config PATH` (before or after the subcommand), else
$WA_CONFIG, else ./wa.toml when present. Its keys are the names of the WA_* variables in lower case
without the prefix, e.g.:

  registry = "10.0.0.5:50051"
  orchestrator = "10.0.0.5:50052"
  task_timeout = 300
  max_queued = 5000

With --json: {"config_file": PATH or null, "settings": {KEY: {"value": ..., "from": ...}}}.

exit codes: 0 shown; 2 a value does not fit its setting (each named), or the config file cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys

from worker_abstraction.cli.config import SETTINGS, Settings

NAME = "config"
SUMMARY = "show the effective settings (flags, WA_* variables, wa.toml) and where each came from"
DEFAULT_LOG_LEVEL = "WARNING"
USES_TLS = False  # shows the TLS settings, files that cannot be read included
EPILOG = """\
examples:
  wa config show
  wa --config ~/wa-prod.toml config show --json
"""


def add_arguments(parser: argparse.ArgumentParser, settings: Settings) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="the effective settings and where each came from",
        description="Print the config file in use and every setting with its value and source.",
        formatter_class=parser.formatter_class,
    )
    show.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


async def run(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    values, problems = settings.checked()
    for problem in problems:
        print(f"wa config: error: {problem}", file=sys.stderr)
    if problems:
        return 2
    file = str(settings.file.resolve()) if settings.file is not None else None
    if args.json:
        document = {
            "config_file": file,
            "settings": {s.key: {"value": values[s.key], "from": _source(settings, s.key)} for s in SETTINGS},
        }
        print(json.dumps(document, indent=2))
        return 0
    if file is not None:
        print(f"config file: {file} (from {settings.file_source})")
    elif settings.file_source:
        print(f"config file: none ({settings.file_source} is empty)")
    else:
        print("config file: none (no --config, no WA_CONFIG, no ./wa.toml)")
    rows = [("KEY", "VALUE", "FROM")] + [
        (s.key, "-" if values[s.key] is None else str(values[s.key]), _source(settings, s.key)) for s in SETTINGS
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for key, value, source in rows:
        print(f"{key:<{widths[0]}}  {value:<{widths[1]}}  {source}")
    return 0


def _source(settings: Settings, key: str) -> str:
    source = settings.values[key].source
    if settings.file is not None and source == f"file {settings.file}":
        return f"file {settings.file.resolve()}"
    return source
