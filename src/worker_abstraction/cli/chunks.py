"""`wa submit --stream`: a task's streamed output (`ctx.emit`) printed as it comes.

Text chunks are written as they are, with no newline added, so a handler that streams the words of a
reply shows the reply as one text; JSON chunks are printed one per line. A status line that follows text
which did not end a line starts on a line of its own, so the two never run into each other.

With `--json`, every chunk is one line of its own instead: {"event": "chunk", "task_id", "index", "text"
or "data", "last"}.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from worker_abstraction.types import TaskUpdate


class ChunkPrinter:
    """Prints the chunks of one task in order; says on stderr when some were dropped before it read them.

    Args:
        json_output: one JSON object per chunk (`--json`) instead of the chunk itself.
        out: where chunks go (default: stdout at the time of each write, so tests can capture it).
    """

    def __init__(self, *, json_output: bool, out: TextIO | None = None) -> None:
        self.json = json_output
        self._out = out
        self.last_index = 0  # the number of the latest chunk printed
        self._mid_line = False  # text was written that did not end its line

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def take(self, update: TaskUpdate) -> None:
        """Print the chunk `update` carries, if any. A gap in the numbering means the orchestrator dropped the
        chunks in between (it keeps a bounded tail for readers that fall behind): stderr says which."""
        chunk = update.chunk
        if chunk is None or chunk.index <= self.last_index:  # (no chunk, or one seen already: a replay)
            return
        if chunk.index > self.last_index + 1:
            self.end_line()
            print(
                f"(chunks {self.last_index + 1} to {chunk.index - 1} of task {update.task_id} were dropped before "
                "they could be printed: this reader fell too far behind)",
                file=sys.stderr,
                flush=True,
            )
        self.last_index = chunk.index
        if self.json:
            document: dict[str, Any] = {"event": "chunk", "task_id": update.task_id, "index": chunk.index}
            if chunk.data_json:
                document["data"] = json.loads(chunk.data_json)
            else:
                document["text"] = chunk.text
            document["last"] = chunk.last
            self.out.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
        elif chunk.data_json:
            self.end_line()
            # Re-encoded compact: one line whatever spacing the worker's JSON had.
            self.out.write(json.dumps(chunk.data, ensure_ascii=False, separators=(",", ":")) + "\n")
        elif chunk.text:
            self.out.write(chunk.text)
            self._mid_line = not chunk.text.endswith("\n")
        self.out.flush()

    def end_line(self) -> None:
        """End the line text chunks left open, so that what is printed next starts a line of its own."""
        if self._mid_line:
            self.out.write("\n")
            self.out.flush()
            self._mid_line = False
