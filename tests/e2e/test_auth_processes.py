"""`wa` servers started with --auth-tokens check every caller; `wa` clients send --token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from processes import FAST_REGISTRY, FAST_WORKER, Start, wa

TOKENS = """
[[principal]]
name = "system/workers"
roles = ["worker", "orchestrator"]
token = "system-token-0123456789"

[[principal]]
name = "client/alice"
roles = ["client"]
token = "-client-token-0123456789"  # a leading dash, as one urlsafe token in 64 has
"""


async def test_a_secured_cluster_runs_tasks_for_callers_with_tokens_only(start: Start, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(TOKENS)
    system = ("--auth-tokens", str(tokens), "--token", "system-token-0123456789")
    registry = await start("registry", "--port", "0", *FAST_REGISTRY, *system)
    await start("worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER, *system)
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:", *system)

    anonymous = await wa("workers", "--registry", registry.address, "--json", "--timeout", "5")
    assert anonymous.code == 2 and "credentials" in anonymous.err, anonymous.err  # refused: as a usage error
    for _ in range(100):  # the worker registers with its token (bounded: 100 x 0.1 s)
        listed = await wa("workers", "--registry", registry.address, "--json", "--token=-client-token-0123456789")
        assert listed.code == 0, listed.err
        if json.loads(listed.out):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the worker never registered with its token")

    submit = ("submit", "shout", "-p", "text=hi", "--orchestrator", daemon.address, "--json")
    refused = await wa(*submit)
    assert refused.code == 2 and "credentials" in refused.err, refused.err  # not run
    done = await wa(*submit, "--token=-client-token-0123456789")
    assert done.code == 0, done.err
    assert json.loads(done.out.splitlines()[-1])["output"] == {"result": "Processed: HI"}
