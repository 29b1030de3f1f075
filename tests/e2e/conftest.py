"""Fixtures shared by the end-to-end tests."""

from processes import start

__all__ = ["start"]
