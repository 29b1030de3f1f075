"""The registry daemon: `python services/registry/main.py [FLAGS]` is `wa registry [FLAGS]`.

Flags and `WA_*` environment variables are those of `wa registry --help`; deployments (see the systemd unit
next to this file) usually set the environment and pass no flags.
"""

from __future__ import annotations

import sys

from worker_abstraction.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["registry", *sys.argv[1:]]))
