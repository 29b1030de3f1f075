"""A small worker that does real work: word and sentence statistics of a text.

Run it from the repository root:

    wa worker examples.text_stats:TextStatsWorker --port 0 --registry 127.0.0.1:50051
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from worker_abstraction import BaseWorker, TaskContext, capability

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class TextStatsWorker(BaseWorker):
    """Counts words and sentences."""

    @capability
    async def word_count(self, text: str, ctx: TaskContext, min_len: int = 1) -> dict[str, int]:
        """Count the words of at least `min_len` characters.

        Args:
            text: The text to count words in.
            ctx: Injected task context.
            min_len: Shortest word length that counts.

        Returns:
            {"words": number of words counted, "min_len": the threshold used}.
        """
        words = _words(text)
        await ctx.report_progress(0.5, f"split into {len(words)} words")
        return {"words": sum(len(w) >= min_len for w in words), "min_len": min_len}

    # A plain `def`: the SDK runs it in a thread pool, so it may block without stalling the worker.
    @capability
    def text_stats(self, text: str, ctx: TaskContext, top: int = 3) -> dict[str, Any]:
        """Words, sentences, characters and the most frequent words of a text.

        Args:
            text: The text to analyse.
            ctx: Injected task context.
            top: How many of the most frequent words to return.

        Returns:
            Counts of words, distinct words, sentences and characters, and the `top` words with their counts.
        """
        words = _words(text)
        ctx.report_progress(0.5, "words counted")
        stripped = text.strip()
        sentences = len(_SENTENCE_END.findall(stripped))
        if stripped and stripped[-1] not in ".!?":
            sentences += 1  # a final sentence without closing punctuation still counts
        ranked = sorted(Counter(words).items(), key=lambda item: (-item[1], item[0]))
        return {
            "words": len(words),
            "distinct_words": len(set(words)),
            "sentences": sentences,
            "characters": len(text),
            "top_words": [[word, count] for word, count in ranked[:top]],
        }
