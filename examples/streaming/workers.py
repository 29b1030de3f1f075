"""A worker that streams its output token by token, as a language model's server does, from a text generator
that needs no model: a word-level Markov chain over one bundled paragraph, seeded by the prompt, so the same
prompt always gives the same text.

Run it from the repository root (see examples/streaming/README.md for the registry, the daemon and the caller):

    wa worker examples.streaming.workers:TokenWorker --registry 127.0.0.1:50051
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import zlib
from collections.abc import Iterator

from worker_abstraction import BaseWorker, TaskContext, capability

# What the chain learns from (written for this example).
PARAGRAPH = """\
The river runs past the old mill and under the stone bridge, and the town listens to it at night. In the
morning the baker opens the shop by the river, and the smell of bread runs down the street to the bridge.
The children walk to the school on the hill, and the old teacher waits at the gate with a bell. At noon the
mill is quiet and the river is loud, and the town eats bread and talks about the rain. The rain comes in
the evening from the hill, and the river rises under the bridge, and the baker closes the shop. At night
the town sleeps and the river runs on, past the mill, under the bridge, to the sea."""

MAX_TOKENS = 1_000  # words one task may ask for
SECONDS_PER_TOKEN = 0.02  # a model takes its time over each token: the stream shows them coming one by one

_WORD = re.compile(r"[\w']+|[.,]")


def _chain(text: str) -> dict[str, list[str]]:
    """Each word (lower case), and the words that follow it in `text`, as often as they do."""
    words = [word.lower() for word in _WORD.findall(text)]
    following: dict[str, list[str]] = {}
    for word, after in itertools.pairwise(words):
        following.setdefault(word, []).append(after)
    return following


CHAIN = _chain(PARAGRAPH)
STARTS = sorted({word for word in CHAIN if word not in {".", ","}})


def tokens(prompt: str, max_tokens: int) -> Iterator[str]:
    """The continuation of `prompt`, token by token: `max_tokens` words and marks, each but the marks with the
    space before it, so that the tokens joined are the text (a sentence's first word capitalized). The same
    prompt always gives the same tokens."""
    rng = random.Random(zlib.crc32(prompt.encode()))
    prompt_words = [word.lower() for word in _WORD.findall(prompt)]
    word = prompt_words[-1] if prompt_words and prompt_words[-1] in CHAIN else rng.choice(STARTS)
    capital = False  # the word after a full stop starts a sentence
    for _ in range(max_tokens):
        word = rng.choice(CHAIN.get(word) or STARTS)
        if word in {".", ","}:
            yield word
        else:
            yield f" {word.capitalize() if capital else word}"
        capital = word == "."


class TokenWorker(BaseWorker):
    """Generates text, streaming each token as it is made."""

    name = "token-worker"

    @capability
    async def generate(self, prompt: str, max_tokens: int, ctx: TaskContext) -> str:
        """Continue `prompt` with `max_tokens` tokens, streaming each one (a text chunk) as it is made.

        Args:
            prompt: The text to continue; its last word, if the chain knows it, is where the chain starts.
            max_tokens: How many tokens (words and punctuation marks) to make, 1 to 1,000.
            ctx: Injected task context.

        Returns:
            The whole continuation: the streamed tokens joined.
        """
        if not 1 <= max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens must be 1 to {MAX_TOKENS:,}, got {max_tokens:,}")
        made: list[str] = []
        for token in tokens(prompt, max_tokens):
            await asyncio.sleep(SECONDS_PER_TOKEN)  # (the pace of a model, not a wait for anything)
            ctx.emit(token, last=len(made) + 1 == max_tokens)
            made.append(token)
        return "".join(made)
