"""The benchmark suite: `make bench` / `make bench-quick` run `bench/run.py` (see bench/README.md)."""
