"""Scenario 10b's slow readers: many readers of one streaming task, each on a connection of its own, that read a
few chunks and then read no more.

    python -m bench.stream_readers KIND ADDRESS TASK_ID READERS FEW

KIND is `session` (each reader a `RemoteOrchestrator`, which follows the task over its OpenSession stream:
`await remote.watch(task_id)`, then `handle.stream()`, as a caller program does) or `watch` (each reader one
raw WatchTask stream, read message by message). Once every reader has read FEW chunks (checked in order), it
prints `readers ready JSON` and waits to be stopped; the bench then freezes the process (SIGSTOP), so that no
reader reads its connection any more, as a reader that stalls does not: from the daemon's side the streams
stop draining.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

import worker_abstraction  # noqa: F401  (before anything loads gRPC, as in a caller program)
from bench.caller import _say
from bench.loops import run
from bench.stream_caller import check
from worker_abstraction import RemoteOrchestrator
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc

READY = "readers ready "  # then a JSON object
_READ_SECONDS = 60.0


async def session_reader(stack: contextlib.AsyncExitStack, address: str, task_id: str, few: int, size: int) -> None:
    remote = await stack.enter_async_context(RemoteOrchestrator(address))
    handle = await remote.watch(task_id)
    seen = 0
    async for chunk in handle.stream():
        check(chunk.index, chunk.text, seen, size)
        seen += 1
        if seen == few:
            return
    raise RuntimeError(f"the stream ended after {seen} chunks")


async def watch_reader(stack: contextlib.AsyncExitStack, address: str, task_id: str, few: int, size: int) -> None:
    from grpc import aio  # (here: at the top it would load gRPC before worker_abstraction chooses its polling)

    channel = aio.insecure_channel(address)
    stack.push_async_callback(channel.close)
    call = pb_grpc.OrchestratorServiceStub(channel).WatchTask(pb.WatchTaskRequest(task_id=task_id))
    stack.callback(call.cancel)
    seen = 0
    while seen < few:
        message = await call.read()
        if message is aio.EOF:
            raise RuntimeError(f"the stream ended after {seen} chunks")
        if message.HasField("chunk"):
            check(message.chunk.index, message.chunk.text, seen, size)
            seen += 1


async def main_async(arguments: argparse.Namespace) -> dict[str, Any]:
    reader = session_reader if arguments.kind == "session" else watch_reader
    began = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        async with asyncio.timeout(_READ_SECONDS):
            await asyncio.gather(
                *(
                    reader(stack, arguments.address, arguments.task_id, arguments.few, arguments.size)
                    for _ in range(arguments.readers)
                )
            )
        _say(READY + json.dumps({"readers": arguments.readers, "seconds": time.perf_counter() - began}))
        await asyncio.Event().wait()  # until stopped (frozen first: the streams are not read from here on)
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("session", "watch"))
    parser.add_argument("address")
    parser.add_argument("task_id")
    parser.add_argument("readers", type=int)
    parser.add_argument("few", type=int)
    parser.add_argument("--size", type=int, default=100, help="characters of a chunk")
    run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
