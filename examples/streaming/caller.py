"""Submit a `generate` task to an orchestrator daemon and print its tokens as they arrive, then its result.

    python -m examples.streaming.caller "PROMPT" --max-tokens N [--orchestrator HOST:PORT]

The daemon's address is `--orchestrator`, else WA_ORCHESTRATOR, else 127.0.0.1:50052 (`wa orchestrator`'s
default). The prompt is printed first, then each token on the same line the moment its chunk arrives, then
the task's result (the same text, returned by the handler) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from worker_abstraction import RemoteOrchestrator

DEFAULT_ORCHESTRATOR = "127.0.0.1:50052"
WAIT_FOR_WORKER_SECONDS = 10.0
RESULT_SECONDS = 60.0


async def generate(address: str, prompt: str, max_tokens: int) -> str:
    """Run `generate` through the daemon at `address`, writing the tokens to stdout as they come; its result."""
    async with RemoteOrchestrator(address) as orchestrator:
        await orchestrator.wait_for_workers("generate", timeout_seconds=WAIT_FOR_WORKER_SECONDS)
        handle = await orchestrator.execute_task("generate", {"prompt": prompt, "max_tokens": max_tokens})
        sys.stdout.write(prompt)
        streamed = []
        async for chunk in handle.stream():
            if chunk.index != len(streamed) + 1:  # (never: chunks come in order, numbered from 1)
                raise RuntimeError(f"chunk {chunk.index} came after chunk {len(streamed)}")
            streamed.append(chunk.text)
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        result: str = await handle.result(timeout_seconds=RESULT_SECONDS)
    sys.stdout.write("\n")
    same = "the same text" if result == "".join(streamed) else "NOT the streamed text"
    print(f"{len(streamed)} chunks streamed; the result, {same}:")
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt")
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--orchestrator", default=os.environ.get("WA_ORCHESTRATOR") or DEFAULT_ORCHESTRATOR)
    arguments = parser.parse_args()
    asyncio.run(generate(arguments.orchestrator, arguments.prompt, arguments.max_tokens))


if __name__ == "__main__":
    main()
