"""What a streamed chunk of the streaming scenario holds, shared by the worker that emits it
(`bench.workers.StreamWorker`), the floor server that streams the same bytes (`bench.floor`) and the caller
that checks them (`bench.stream_caller`). Free of imports, so that the floor stays bare gRPC."""

from __future__ import annotations


def numbered(index: int, size: int) -> str:
    """Chunk number `index` (from 0) of `size` characters: its number in 8 digits, then filler."""
    return f"{index:08d}{'x' * max(size - 8, 0)}"[:size]


def out_of_place(index: int, text: str, size: int) -> str | None:
    """Why `text` is not chunk number `index` (from 0) of `size` characters, or None when it is."""
    if len(text) != size or text[:8] != f"{index:08d}"[:size]:
        return f"chunk {index} was {text[:16]!r} ({len(text)} characters)"
    return None
