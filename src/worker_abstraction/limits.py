"""The one message size limit every server, channel and batch of this package keeps to.

gRPC's own default (4 MiB) makes a large argument or output fail in ways that look like a dead worker;
here the limit is one setting, 32 MiB by default, and a task that would not fit is refused (or, for an
output, failed) with a message that names the size and the limit, before anything is sent.
"""

from __future__ import annotations

DEFAULT_MAX_MESSAGE_BYTES = 32 * 2**20
# Room for everything around a task's arguments or output in its message (ids, metadata, timestamps, ...).
ENVELOPE_BYTES = 64 * 2**10
# gRPC keeps message sizes in a signed 32-bit integer.
MAX_GRPC_MESSAGE_BYTES = 2**31 - 1
_max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES


def max_message_bytes() -> int:
    """The largest message a server or channel of this package sends or receives."""
    return _max_message_bytes


def set_max_message_bytes(limit: int) -> None:
    """Change the limit for the servers and channels made from now on. A worker, its orchestrator and their
    callers must agree on it (`wa` takes `--max-message-mb` / `WA_MAX_MESSAGE_MB`)."""
    global _max_message_bytes
    if limit < 2 * ENVELOPE_BYTES:
        raise ValueError(f"a message limit must be at least {2 * ENVELOPE_BYTES} bytes, got {limit}")
    if limit > MAX_GRPC_MESSAGE_BYTES:
        raise ValueError(f"a message limit must be at most {MAX_GRPC_MESSAGE_BYTES} bytes (gRPC's), got {limit}")
    _max_message_bytes = limit


def payload_limit() -> int:
    """The largest task arguments (or output) one message can carry, as JSON text."""
    return _max_message_bytes - ENVELOPE_BYTES


def too_large(what: str, size: int) -> str | None:
    """Why a payload of `size` bytes cannot be carried (None: it fits)."""
    limit = payload_limit()
    if size <= limit:
        return None
    return (
        f"{what} take {size:,} bytes as JSON; a message carries at most {limit:,} "
        f"(the limit is {_max_message_bytes:,} bytes; raise it on every part with --max-message-mb)"
    )
