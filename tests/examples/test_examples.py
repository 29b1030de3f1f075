"""Every example runs: the workers' capabilities in-process, `make demo`'s program as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from worker_abstraction import (
    AsyncOrchestrator,
    CapabilitySpec,
    ParameterSpec,
    RegistryServer,
    TaskFailedError,
)

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` (unlike `python -m pytest`) does not put the cwd on sys.path
    sys.path.insert(0, str(REPO))

from examples.seed_worker import SeedWorker  # noqa: E402
from examples.text_stats import TextStatsWorker  # noqa: E402

DEMO = REPO / "examples" / "demo.py"
WAIT_SECONDS = 10.0
DEMO_SECONDS = 45.0


@pytest.fixture
async def orch() -> AsyncIterator[AsyncOrchestrator]:
    """A registry, one SeedWorker and one TextStatsWorker in-process, and an orchestrator that sees both."""
    async with RegistryServer(host="127.0.0.1", port=0) as registry:
        seed = SeedWorker(registry.address, host="127.0.0.1", port=0, name="seed")
        stats = TextStatsWorker(registry.address, host="127.0.0.1", port=0)
        async with seed, stats, AsyncOrchestrator(registry.address) as orchestrator:
            await orchestrator.wait_for_workers(timeout_seconds=WAIT_SECONDS, count=2)
            yield orchestrator


async def run(orch: AsyncOrchestrator, capability: str, **params: Any) -> Any:
    handle = await orch.execute_task(capability, params, timeout_seconds=WAIT_SECONDS)
    async with asyncio.timeout(WAIT_SECONDS):
        return await handle.result()


# ------------------------------------------------------------------------------------------ seed_worker


def _without_output_schemas(specs: list[CapabilitySpec]) -> list[CapabilitySpec]:
    return [dataclasses.replace(spec, output_schema="") for spec in specs]


def test_seed_worker_declares_the_seeds_two_tools() -> None:
    processor = SeedWorker.capability_specs()[0]
    assert json.loads(processor.output_schema) == {"type": "object", "additionalProperties": {"type": "string"}}
    assert _without_output_schemas(SeedWorker.capability_specs()) == [
        CapabilitySpec(
            name="dummy_processor",
            description="A simple processor that converts input text to uppercase.",
            parameters=(
                ParameterSpec(name="input", type="string", description="The text to process.", required=False),
            ),
        ),
        CapabilitySpec(name="error_simulator", description="A tool that always fails, for testing error handling."),
    ]


async def test_dummy_processor_uppercases_its_input_and_names_the_worker(orch: AsyncOrchestrator) -> None:
    assert await run(orch, "dummy_processor", input="hello world") == {
        "result": "Processed: HELLO WORLD",
        "worker": "seed",
    }


async def test_dummy_processor_without_input_processes_the_seeds_default(orch: AsyncOrchestrator) -> None:
    assert (await run(orch, "dummy_processor"))["result"] == "Processed: DEFAULT_INPUT"


async def test_error_simulator_fails_with_the_seeds_message(orch: AsyncOrchestrator) -> None:
    with pytest.raises(TaskFailedError) as failed:
        await run(orch, "error_simulator")
    assert failed.value.error_message == "ValueError: Simulated error during task execution."


# ------------------------------------------------------------------------------------------- text_stats


def test_text_stats_worker_declares_its_capabilities() -> None:
    assert all(spec.output_schema for spec in TextStatsWorker.capability_specs())  # (from their return types)
    assert _without_output_schemas(TextStatsWorker.capability_specs()) == [
        CapabilitySpec(
            name="word_count",
            description="Count the words of at least `min_len` characters.",
            parameters=(
                ParameterSpec(name="text", type="string", description="The text to count words in."),
                ParameterSpec(
                    name="min_len", type="integer", description="Shortest word length that counts.", required=False
                ),
            ),
        ),
        CapabilitySpec(
            name="text_stats",
            description="Words, sentences, characters and the most frequent words of a text.",
            parameters=(
                ParameterSpec(name="text", type="string", description="The text to analyse."),
                ParameterSpec(
                    name="top",
                    type="integer",
                    description="How many of the most frequent words to return.",
                    required=False,
                ),
            ),
        ),
    ]


async def test_word_count_counts_only_words_of_at_least_min_len(orch: AsyncOrchestrator) -> None:
    text = "a bb ccc dddd, it's e-mail"
    assert await run(orch, "word_count", text=text) == {"words": 7, "min_len": 1}
    assert await run(orch, "word_count", text=text, min_len=3) == {"words": 4, "min_len": 3}


async def test_text_stats_counts_words_sentences_characters_and_top_words(orch: AsyncOrchestrator) -> None:
    text = "The cat sat. The dog ran! Did the cat see the dog"
    assert await run(orch, "text_stats", text=text, top=2) == {
        "words": 12,
        "distinct_words": 7,
        "sentences": 3,
        "characters": len(text),
        "top_words": [["the", 4], ["cat", 2]],
    }


async def test_text_stats_of_an_empty_text_is_all_zeros(orch: AsyncOrchestrator) -> None:
    result = await run(orch, "text_stats", text="   ")
    assert (result["words"], result["sentences"], result["top_words"]) == (0, 0, [])


# ------------------------------------------------------------------------------------------------- demo


@dataclass
class DemoRun:
    code: int
    out: str


async def _start_demo(program: Path = DEMO, *args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(program),
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _finish(process: asyncio.subprocess.Process, out: bytearray, seconds: float = DEMO_SECONDS) -> DemoRun:
    """Read the demo's output to the end; if it overstays, SIGTERM it (it then stops its own children)."""
    assert process.stdout is not None
    try:
        async with asyncio.timeout(seconds):
            out += await process.stdout.read()
            await process.wait()
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    out += await process.stdout.read()
            if process.returncode is None:
                process.kill()
            await process.wait()
    assert process.returncode is not None
    return DemoRun(process.returncode, out.decode(errors="replace"))


def _refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_demo_runs_the_seeds_three_scenarios_and_exits_0() -> None:
    demo = await _finish(await _start_demo(), bytearray())
    assert demo.code == 0, demo.out
    success = demo.out[demo.out.index("Scenario 1") : demo.out.index("Scenario 2")]
    assert "COMPLETED" in success and "Processed: HELLO WORLD" in success
    failure = demo.out[demo.out.index("Scenario 2") : demo.out.index("Scenario 3")]
    assert "FAILED" in failure and "Simulated error during task execution." in failure
    unsupported = demo.out[demo.out.index("Scenario 3") :]
    assert "NoWorkerError" in unsupported
    assert "All scenarios behaved as expected." in demo.out


async def test_demo_stops_every_process_it_started_when_interrupted() -> None:
    process = await _start_demo()
    assert process.stdout is not None
    out = bytearray()
    ports: list[int] = []
    try:
        async with asyncio.timeout(DEMO_SECONDS):
            while b"Waiting until the orchestrator" not in out:
                line = await process.stdout.readline()
                assert line, f"the demo ended early:\n{out.decode(errors='replace')}"
                out += line
                if match := re.search(rb"listening on [\w.]+:(\d+)", line):
                    ports.append(int(match[1]))
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        demo = await _finish(process, out)
    assert demo.code == 130, demo.out
    assert len(ports) == 4, demo.out
    assert all(_refuses_connections(port) for port in ports), demo.out


async def test_demo_secure_runs_with_mtls_and_tokens_and_refuses_the_wrong_callers() -> None:
    demo = await _finish(await _start_demo(REPO / "examples" / "demo_secure.py"), bytearray())
    assert demo.code == 0, demo.out
    assert demo.out.count("(as expected)") == 3
    assert "UNAUTHENTICATED" in demo.out and "PERMISSION_DENIED" in demo.out and "-> worker" in demo.out


@pytest.mark.timeout(180)
async def test_demo_cluster_finishes_every_task_once_while_a_registry_a_daemon_and_a_nats_node_die() -> None:
    demo = await _finish(await _start_demo(REPO / "examples" / "demo_cluster.py", "400"), bytearray(), 150)
    assert demo.code == 0, demo.out
    assert all(f"SIGKILL {what}" in demo.out for what in ("registry 1", "daemon o1", "NATS node n1")), demo.out
    assert "400 completed with the right output, 0 lost, 0 attempts started twice" in demo.out
    assert "every task completed exactly once" in demo.out
