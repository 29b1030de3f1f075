"""Example workers and the `make demo` program."""
