"""examples/streaming/README.md's commands, run line by line exactly as written, as a user pastes them into a
shell in the repository root: the callers print the tokens in order, then the result, as the README shows.

As in `test_etl_example.py`: the block marked `<!-- example test: streaming ... -->` runs (by `readme_block`)
in a fresh directory that holds `examples` (a link to the repository's), with the venv's `wa` and `python` on
PATH, its servers on free ports.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from examples.streaming.workers import MAX_TOKENS, TokenWorker, tokens
from tests.e2e.processes import REPO
from tests.examples.readme_block import block, run_block

pytestmark = pytest.mark.timeout(90)

README = REPO / "examples" / "streaming" / "README.md"
LINE_SECONDS = 45.0


def test_the_token_worker_declares_generate_and_its_text_is_the_same_for_the_same_prompt() -> None:
    declared = {
        spec.name: [(p.name, p.type, p.required) for p in spec.parameters] for spec in TokenWorker.capability_specs()
    }
    assert declared == {"generate": [("prompt", "string", True), ("max_tokens", "integer", True)]}
    made = list(tokens("The river", 24))
    assert len(made) == 24 and made == list(tokens("The river", 24))
    assert made != list(tokens("At night", 24))
    assert len(list(tokens("", MAX_TOKENS))) == MAX_TOKENS  # (an empty prompt starts anywhere)


async def test_the_streaming_examples_commands_print_the_tokens_in_order_then_the_result(tmp_path: Path) -> None:
    lines = block(README, "streaming")
    assert [line.endswith("&") for line in lines] == [True, True, True, False, False]  # registry, worker, daemon
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    ran = await run_block(lines, tmp_path, line_seconds=LINE_SECONDS)
    assert len(ran) == 2
    shown = README.read_text()
    for call in ran:
        arguments = shlex.split(call.line)
        assert arguments[:3] == ["python", "-m", "examples.streaming.caller"]
        prompt, count = arguments[3], int(arguments[arguments.index("--max-tokens") + 1])
        expected = "".join(tokens(prompt, count))
        streamed, said, result = call.out.splitlines()
        # The prompt, then every token in order (the caller checks each chunk's number), then the result.
        assert streamed == prompt + expected
        assert said == f"{count} chunks streamed; the result, the same text:"
        assert json.loads(result) == expected
    first = ran[0].out.strip()
    assert f"```\n{first}\n```" in shown  # what the README says the first caller prints, it prints
