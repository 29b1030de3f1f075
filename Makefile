# Two commands: `make demo` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install browser demo demo-secure demo-cluster test lint proto clean bench bench-quick chaos fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The dashboard's browser test (tests/dashboard/test_dashboard_browser.py) drives Debian's Chromium through
# playwright (which never downloads a browser of its own here). Installed when missing and possible (root with
# apt); otherwise that one test is skipped and says why.
browser:
	@test -x /usr/bin/chromium || (export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) && echo "installed chromium" || \
	  echo "chromium could not be installed (needs root and apt): the dashboard's browser test will be skipped")

demo: $(STAMP)
	$(PY) examples/demo.py

# The same system with mTLS and tokens (development certificates and a token file in a temporary directory).
demo-secure: $(STAMP)
	$(PY) examples/demo_secure.py

# Scale-out: a 3-node NATS cluster (the pip-installed nats-server), 2 registries, 2 orchestrator daemons sharing
# tasks, 4 workers; 2,000 tasks while a registry, a daemon and a NATS node are SIGKILLed; every task once.
demo-cluster: $(STAMP)
	$(PY) examples/demo_cluster.py

test: $(STAMP) browser
	$(PY) -m ruff check src tests examples services scripts bench
	$(PY) -m ruff format --check src tests examples services scripts bench
	$(PY) -m mypy src
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check src tests examples services scripts bench
	$(PY) -m ruff format --check src tests examples services scripts bench
	$(PY) -m mypy src

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

# Not part of `make test`: prints one table and writes bench/results/latest.json (see bench/README.md).
bench: $(STAMP)
	$(PY) bench/run.py

bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

# The fault-injection suites at the issue's size (`make test` runs them small): 500 tasks of 50-500 ms while a
# worker is killed, one stopped past the TTL, the registry and the daemon restarted; then 50 workflows (10-12
# steps, maps, failures) while their daemon is SIGKILLed and restarted three times, on SQLite and on NATS; then
# an every-second schedule for 60 s on two NATS daemons, one SIGKILLed and restarted: each occurrence once.
# The tests set their own pytest timeouts from these numbers.
chaos: $(STAMP)
	WA_CHAOS_TASKS=500 WA_CHAOS_MIN_MS=50 WA_CHAOS_MAX_MS=500 $(PY) -m pytest tests/e2e/test_chaos.py -s
	WA_WF_CHAOS_WORKFLOWS=50 $(PY) -m pytest tests/e2e/test_workflow_chaos.py -s -rxX
	WA_SCHEDULE_SECONDS=60 $(PY) -m pytest tests/e2e/test_schedule_processes.py -s -rxX

# The fuzz harness at full size (`make test` runs 4 cases per RPC and kind): 280 cases for each RPC and each
# of its three kinds (raw bytes, hostile messages, random-filled messages), about 19,000 in all, against real
# registry, worker and daemon processes.
fuzz: $(STAMP)
	WA_FUZZ_EXAMPLES=280 $(PY) -m pytest tests/fuzz -m fuzz -p no:randomly

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
