"""Scenario 10's caller: streamed output and input requests through an orchestrator daemon, as a caller program
(`RemoteOrchestrator`) does.

    python -m bench.stream_caller WHAT ADDRESS MODE

It prints `caller ready` once a `StreamWorker` is there, `phase NAME` at the steps the bench follows, and at
the end one `result JSON` line. WHAT is one of:

- `flow`: (10a) a warm-up stream, then `rounds` rounds of one `chunks` task streaming `stream_chunks` chunks
  of `stream_chunk_bytes`, read with `handle.stream()` and each checked for its number and its text: chunks
  per second from the submission to the last chunk. Before each round it prints `floor chunks` and waits for
  `go` on its stdin while the bench streams as many messages of that size over bare gRPC
  (`bench.floor.FloorBeside`). Then (10c) `rounds` rounds of `input_count` tasks that ask for input and as
  many no-op tasks, in LATENCY_BLOCKS blocks taking turns: for a task that asks, the time from
  `provide_input` to its result (it was waiting on the question already); for a no-op, the time from its
  submission to its result.
- `slow`: (10b) one `gated_chunks` task after another: each streams a few chunks and asks (the gate); the
  caller prints `wait gate TASK_ID` and waits for `go` (the bench puts its slow readers on the task
  meanwhile, or none), answers, reads every chunk the task then streams up to its second question, prints
  `wait end` and waits for `go` (the bench reads the daemon's RSS), answers, and awaits the result. It goes
  on until the bench answers `end` instead of `go` to a `wait gate`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import worker_abstraction  # noqa: F401  (before anything loads gRPC, as in a caller program)
from bench.caller import GO, PHASE, READY, RESULT, WAIT, _blocks, _floor_beside, _say
from bench.chunks import out_of_place
from bench.config import CONFIGS, LATENCY_BLOCKS, Config
from bench.loops import run
from bench.measure import Errors, percentile
from worker_abstraction import AsyncTaskHandle, RemoteOrchestrator, TaskStatus

END = "end"  # the bench's answer to `wait gate` when no task is to follow
_RESULT_SECONDS = 120.0


async def stream_round(remote: RemoteOrchestrator, count: int, size: int) -> float:
    """One `chunks` task of `count` chunks: chunks per second from its submission to its last chunk.

    Raises:
        RuntimeError: a chunk out of place or missing, or the task's result is not `count`.
    """
    began = time.perf_counter()
    handle = await remote.execute_task("chunks", {"count": count, "size": size})
    seen = await read_chunks(handle, size, count)
    ended = time.perf_counter()
    if seen != count:
        raise RuntimeError(f"{seen} of {count} chunks arrived")
    result = await handle.result(timeout_seconds=_RESULT_SECONDS)
    if result != count:
        raise RuntimeError(f"the task returned {result!r}, not {count}")
    return count / (ended - began)


async def read_chunks(handle: AsyncTaskHandle, size: int, count: int) -> int:
    """Read the handle's chunks up to the `count`-th, each checked; how many came (fewer: the stream ended).

    Raises:
        RuntimeError: a chunk out of place.
    """
    seen = 0
    async for chunk in handle.stream():
        check(chunk.index, chunk.text, seen, size)
        seen += 1
        if seen == count:
            break
    return seen


def check(index: int, text: str, seen: int, size: int) -> None:
    """Raise unless the chunk numbered `index` (from 1) with `text` is the one after the `seen` before it."""
    problem = out_of_place(seen, text, size) if index == seen + 1 else f"chunk number {index} came after {seen}"
    if problem is not None:
        raise RuntimeError(problem)


async def flow(remote: RemoteOrchestrator, config: Config, errors: Errors) -> dict[str, Any]:
    size = config.stream_chunk_bytes
    _say(PHASE + "chunks")
    await stream_round(remote, config.stream_warmup_chunks, size)
    per_second = []
    for _ in range(config.rounds):
        await _floor_beside("chunks")
        per_second.append(await stream_round(remote, config.stream_chunks, size))
    _say(PHASE + "input")

    async def noop() -> float:
        began = time.perf_counter()
        await (await remote.execute_task("noop", {})).result(timeout_seconds=_RESULT_SECONDS)
        return time.perf_counter() - began

    async def answered() -> float:
        handle = await remote.execute_task("ask", {})
        request = await handle.input_requested(timeout_seconds=_RESULT_SECONDS)
        began = time.perf_counter()
        await handle.provide_input(1, request_id=request.request_id)
        if await handle.result(timeout_seconds=_RESULT_SECONDS) != 1:
            raise RuntimeError("the task that asked returned another answer than it was given")
        return time.perf_counter() - began

    async def samples(operation: Any, count: int) -> list[float]:
        made = []
        for _ in range(count):
            try:
                made.append(await operation())
            except Exception as error:
                errors.record(error)
        return made

    await samples(noop, config.input_warmup)
    await samples(answered, config.input_warmup)
    figures: dict[str, list[float]] = {
        "input_resume_p50_us": [],
        "input_resume_p99_us": [],
        "input_noop_p50_us": [],
        "input_noop_p99_us": [],
    }
    for _ in range(config.rounds):
        noops: list[float] = []
        resumes: list[float] = []
        for block in _blocks(config.input_count, LATENCY_BLOCKS):
            noops += await samples(noop, block)
            resumes += await samples(answered, block)
        if not noops or not resumes:
            raise RuntimeError(f"every task of a kind failed: {dict(errors.counts)} {errors.examples}")
        for name, made in (("input_resume", resumes), ("input_noop", noops)):
            figures[f"{name}_p50_us"].append(percentile(made, 50) * 1e6)
            figures[f"{name}_p99_us"].append(percentile(made, 99) * 1e6)
    return {"stream_chunks_per_s": per_second, **figures}


async def slow(remote: RemoteOrchestrator, config: Config, errors: Errors) -> dict[str, Any]:
    """Gated streaming tasks, one after another, until the bench says `end` (see the module's docstring)."""
    size, rest = config.stream_chunk_bytes, config.slow_rest_chunks
    first = 2 * config.slow_read_chunks  # (the readers read a few of them)
    tasks = 0
    while True:
        handle = await remote.execute_task("gated_chunks", {"first": first, "rest": rest, "size": size})
        gate = await handle.input_requested(timeout_seconds=_RESULT_SECONDS)
        _say(f"{WAIT}gate {handle.task_id}")
        if await _read_word() == END:
            await handle.cancel("the bench is done")
            break
        await handle.provide_input(True, request_id=gate.request_id)
        seen = 0
        async for update in handle:  # (every update from the first; the chunks checked in order)
            if update.chunk is not None:
                check(update.chunk.index, update.chunk.text, seen, size)
                seen += 1
            request = update.input_request
            if update.status is TaskStatus.INPUT_REQUIRED and request and request.request_id != gate.request_id:
                break
        if seen != first + rest:
            raise RuntimeError(f"{seen} of {first + rest} chunks arrived before the task's second question")
        await _wait_for(f"{WAIT}end")
        await handle.provide_input(True)
        if await handle.result(timeout_seconds=_RESULT_SECONDS) != first + rest:
            raise RuntimeError("the gated task returned another count than it streamed")
        tasks += 1
    return {"tasks": tasks, "chunks_per_task": first + rest}


async def _read_word() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def _wait_for(line: str) -> None:
    _say(line)
    answer = await _read_word()
    if answer != GO:
        raise RuntimeError(f"the bench answered {answer[:40]!r}, not {GO!r}")


async def main_async(arguments: argparse.Namespace) -> dict[str, Any]:
    config = CONFIGS[arguments.mode]
    errors = Errors()
    async with RemoteOrchestrator(arguments.address) as remote:
        await remote.wait_for_workers("chunks", timeout_seconds=30)
        _say(READY)
        found = await (flow if arguments.what == "flow" else slow)(remote, config, errors)
    return found | {"errors": dict(errors.counts), "error_examples": errors.examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("flow", "slow"))
    parser.add_argument("address")
    parser.add_argument("mode", choices=sorted(CONFIGS))
    arguments = parser.parse_args()
    found = run(main_async(arguments))
    _say(PHASE + "done")
    _say(RESULT + json.dumps(found))


if __name__ == "__main__":
    main()
