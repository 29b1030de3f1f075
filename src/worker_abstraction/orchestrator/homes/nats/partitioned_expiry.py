"""Expiry: how long what a finished task leaves on NATS is kept, as the per-message TTLs (`Nats-TTL`) its
last writes carry.

Retention (`core.retention.Retention`) is told to the home before it takes tasks (`use_retention`); from then
on, NATS drops what ended by itself, and no sweep reads anything back:

- a finished document (`done.<id>`) is written with a TTL of its capability's time plus one second;
- its idempotency key is written again, once the end is stored, with a TTL of its capability's time (so it
  goes before the document: the same key then makes a new task, never one under the expiring id);
- its last update goes to the update log as a rollup of the task's subject (its earlier updates go at once)
  with the same TTL;
- a dead letter is written with a TTL of `dead_letters_seconds`.

NATS counts TTLs in whole seconds, one at least: a time of 0 keeps things one second. Unfinished tasks carry
no TTL (their live documents, key claims and updates), so nothing of them expires (the update log's own age
limit aside).
"""

from __future__ import annotations

import math

from worker_abstraction.orchestrator.core.retention import Retention

TTL_HEADER = "Nats-TTL"
DOCUMENT_AFTER_KEY_SECONDS = 1  # a finished document outlives its idempotency key by this much


class Expiry:
    """The TTL headers of what a finished task leaves, under one `Retention` (none: kept for good)."""

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()

    def kept_seconds(self, capability: str) -> int | None:
        """How long a finished task of `capability` is kept on NATS, in whole seconds (None: for good)."""
        kept = self.retention.kept_for(capability)
        return None if kept is None else _whole(kept)

    def finished_headers(self, capability: str) -> dict[str, str] | None:
        """The headers of a finished document (None: none needed)."""
        kept = self.kept_seconds(capability)
        return None if kept is None else {TTL_HEADER: f"{kept + DOCUMENT_AFTER_KEY_SECONDS}s"}

    def key_headers(self, capability: str) -> dict[str, str] | None:
        """The headers a finished task's idempotency key is written again with (None: it is left alone)."""
        kept = self.kept_seconds(capability)
        return None if kept is None else {TTL_HEADER: f"{kept}s"}

    def last_update_headers(self, capability: str) -> dict[str, str]:
        """The headers a finished task's last update adds to its number: a rollup with a TTL, or none."""
        kept = self.kept_seconds(capability)
        return {} if kept is None else {"Nats-Rollup": "sub", TTL_HEADER: f"{kept}s"}

    def letter_headers(self) -> dict[str, str] | None:
        """The headers of a dead letter (None: kept until taken)."""
        kept = self.retention.dead_letters_seconds
        return None if kept is None else {TTL_HEADER: f"{_whole(kept)}s"}


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds))
