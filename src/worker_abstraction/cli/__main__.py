"""`python -m worker_abstraction.cli ...` is `wa ...`."""

import sys

from worker_abstraction.cli.main import main

sys.exit(main())
