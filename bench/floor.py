"""The floor: bare grpc.aio between two processes, measured in the same run as the framework.

Run as `python -m bench.floor --port 0`, it serves two raw-bytes methods through a generic handler (no
proto, no serializers, so the figure is gRPC itself) and prints `floor listening on HOST:PORT`:

- `/bench.Floor/Unary`: a no-op unary call (empty request, empty response);
- `/bench.Floor/Stream`: a server stream of three empty messages, so that one unary call followed by
  one stream is the seed's per-task shape (ExecuteTask, then StreamTaskStatus: PENDING, RUNNING, COMPLETED);
- `/bench.Floor/Chunks`: a server stream of COUNT messages of SIZE bytes (the request is `b"COUNT SIZE"`),
  each numbered as `bench.chunks.numbered` numbers a streamed chunk: what the streaming scenario's chunks
  through the daemon are held to (`chunk_stream`).

It also answers the registry's `RegisterWorker` and `WorkerHeartbeat` with a constant `success=true`
response without decoding the request, so the registry scenario's load generator can be pointed at it:
the floor for the registry is grpc.aio receiving the same heartbeat traffic.

`measure()` starts that server and measures it from the bench process.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from grpc import aio

from bench.chunks import numbered
from bench.config import LATENCY_BLOCKS, Config
from bench.loops import run
from bench.measure import (
    Errors,
    Figure,
    Results,
    latencies,
    latency_round,
    latency_rounds,
    percentile,
    throughput,
    throughput_rounds,
)
from bench.procs import Child, Children, CpuWatch

SERVICE = "bench.Floor"
UNARY = f"/{SERVICE}/Unary"
STREAM = f"/{SERVICE}/Stream"
CHUNKS = f"/{SERVICE}/Chunks"
STREAM_MESSAGES = 3
READY_PREFIX = "floor listening on "
REGISTRY_SERVICE = "worker_abstraction.RegistryService"
# A serialized RegisterWorkerResponse / HeartbeatResponse with only `bool success = 1` set to true.
SUCCESS = b"\x08\x01"


async def _unary(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
    return b""


async def _stream(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
    for _ in range(STREAM_MESSAGES):
        yield b""


async def _chunks(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
    count, size = (int(word) for word in request.split())
    for index in range(count):
        yield numbered(index, size).encode()


async def chunk_stream(method: aio.UnaryStreamMultiCallable[bytes, bytes], count: int, size: int) -> float:
    """One call of `/bench.Floor/Chunks`: its messages per second, from the call to the last message, each
    checked for its place and size as the streaming caller checks a chunk.

    Raises:
        RuntimeError: a message out of place, of another size, or missing.
    """
    began = time.perf_counter()
    index = 0
    async for message in method(f"{count} {size}".encode()):
        if len(message) != size or message[:8] != b"%08d" % index:
            raise RuntimeError(f"the floor's message {index} was {message[:16]!r}, {len(message)} bytes")
        index += 1
    elapsed = time.perf_counter() - began
    if index != count:
        raise RuntimeError(f"the floor streamed {index} of {count} messages")
    return count / elapsed


async def _success(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
    return SUCCESS


async def _success_each(
    requests: AsyncIterator[bytes], context: aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    async for _ in requests:
        yield SUCCESS


def handlers() -> tuple[grpc.GenericRpcHandler, ...]:
    """The floor's methods and the registry's constant answers."""
    # Without serializers gRPC hands the handlers the raw bytes and sends theirs as they are.
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "Stream": grpc.unary_stream_rpc_method_handler(_stream),
            "Chunks": grpc.unary_stream_rpc_method_handler(_chunks),
        },
    )
    registry = grpc.method_handlers_generic_handler(
        REGISTRY_SERVICE,
        {
            "RegisterWorker": grpc.unary_unary_rpc_method_handler(_success),
            "WorkerHeartbeat": grpc.unary_unary_rpc_method_handler(_success),
            "HeartbeatStream": grpc.stream_stream_rpc_method_handler(_success_each),
        },
    )
    return handler, registry


async def serve(host: str, port: int) -> None:
    """Serve the floor methods until SIGINT/SIGTERM."""
    server = aio.server()
    server.add_generic_rpc_handlers(handlers())
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"{READY_PREFIX}{host}:{bound}", flush=True)
    await stop.wait()
    await server.stop(None)


async def measure(children: Children, config: Config) -> Results:
    """Start the floor server in a subprocess and measure it from this process.

    Returns:
        floor_unary_p50_us / _p99_us, floor_unary_throughput_64 / _256 (calls/s), floor_seed_p50_us /
        _p99_us (unary + 3-message stream, sequential) and floor_seed_throughput_256 (such pairs per second);
        extras: the CPU share of client and server at 256 in flight. Also
        floor_unary_throughput_256_2servers: the same calls spread over two server processes, as the
        task scenarios spread tasks over two workers.
    """
    server, second = await asyncio.gather(
        *(children.start(f"floor-{i}", "-m", "bench.floor", "--port", "0", ready_prefix=READY_PREFIX) for i in (1, 2))
    )
    errors = Errors()
    results = Results()
    figures = results.figures
    cpu = CpuWatch({"client": os.getpid(), "server": server.pid})
    async with aio.insecure_channel(server.address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        unary = channel.unary_unary(UNARY, None, None)
        stream = channel.unary_stream(STREAM, None, None)

        async def unary_call() -> object:
            return await unary(b"")

        async def seed_shape() -> object:
            await unary(b"")
            async for _ in stream(b""):
                pass
            return None

        latency = await latency_rounds(
            unary_call,
            warmup=config.floor_latency_warmup,
            count=config.floor_latency_count,
            rounds=config.rounds,
            errors=errors,
        )
        figures["floor_unary_p50_us"], figures["floor_unary_p99_us"] = latency.p50_us, latency.p99_us
        # One call after the other: how many a caller makes per second (what one-by-one submission is held to).
        figures["floor_unary_sequential_per_s"] = latency.per_second
        for in_flight in (64, 256):
            figures[f"floor_unary_throughput_{in_flight}"] = await throughput_rounds(
                unary_call,
                warmup=config.floor_throughput_warmup,
                count=config.floor_throughput_count,
                in_flight=in_flight,
                rounds=config.rounds,
                errors=errors,
                cpu=cpu if in_flight == 256 else None,
            )
        results.extras["floor_cpu_share_256"] = cpu.shares
        results.extras["floor_cpu_us_per_call_256"] = cpu.per_call_us(config.floor_throughput_count * config.rounds)
        seed = await latency_rounds(
            seed_shape,
            warmup=config.floor_latency_warmup // 2,
            count=config.floor_seed_latency_count,
            rounds=config.rounds,
            errors=errors,
        )
        figures["floor_seed_p50_us"], figures["floor_seed_p99_us"] = seed.p50_us, seed.p99_us
        figures["floor_seed_throughput_256"] = await throughput_rounds(
            seed_shape,
            warmup=config.floor_throughput_warmup // 2,
            count=config.floor_seed_throughput_count,
            in_flight=256,
            rounds=config.rounds,
            errors=errors,
        )
        async with aio.insecure_channel(second.address) as other:
            both = (unary, other.unary_unary(UNARY, None, None))
            turn = itertools.count()

            async def unary_either() -> object:
                return await both[next(turn) % 2](b"")

            figures["floor_unary_throughput_256_2servers"] = await throughput_rounds(
                unary_either,
                warmup=config.floor_throughput_warmup,
                count=config.floor_throughput_count,
                in_flight=256,
                rounds=config.rounds,
                errors=errors,
            )
    await children.stop(server)
    await children.stop(second)
    if errors.total:
        raise RuntimeError(f"the bare gRPC floor saw errors: {dict(errors.counts)} {errors.examples}")
    return results


class FloorBeside:
    """The floor measured beside another scenario: a floor server of its own and, whenever asked, one round of
    a kind, so that each of the scenario's rounds can be held to a floor round made just before it (the
    machine's speed drifts over the minutes between the floor scenario and a later one).

    Kinds: `latency` (one of a round's LATENCY_BLOCKS blocks of sequential calls; `latency end` closes the round
    with the p50 of its blocks' calls), `throughput` (calls per second at 256 in flight), `sequential`
    (calls per second, one after the other, as many as the one-by-one round's tasks) and `chunks` (one server
    stream of `stream_chunks` messages of `stream_chunk_bytes`: messages per second, `chunk_stream`).
    `figures(prefix)` gives them as `{prefix}floor_unary_p50_us`, `{prefix}floor_unary_throughput_256`,
    `{prefix}floor_unary_sequential_per_s` and `{prefix}floor_chunks_per_s`.
    """

    KINDS = ("latency", "throughput", "sequential", "chunks")

    def __init__(self, children: Children, config: Config) -> None:
        self._children = children
        self._config = config
        self._errors = Errors()
        self._rounds: dict[str, list[float]] = {kind: [] for kind in self.KINDS}
        self._latency_samples: list[float] = []  # the latency round's blocks so far
        self._server: Child | None = None
        self._channel: aio.Channel | None = None
        self._unary: Callable[[], Awaitable[object]] | None = None

    async def __aenter__(self) -> FloorBeside:
        self._server = await self._children.start("floor-beside", "-m", "bench.floor", "--port", "0",
                                                  ready_prefix=READY_PREFIX)  # fmt: skip
        self._channel = aio.insecure_channel(self._server.address)
        await asyncio.wait_for(self._channel.channel_ready(), 10)
        method = self._channel.unary_unary(UNARY, None, None)

        async def unary_call() -> object:
            return await method(b"")

        self._unary = unary_call
        await latencies(unary_call, self._config.floor_latency_warmup, self._errors)
        await throughput(unary_call, self._config.floor_throughput_warmup, 256, self._errors)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._channel is not None:
            await self._channel.close()
        if self._server is not None:
            await self._children.stop(self._server)

    async def round(self, kind: str) -> None:
        """One round of `kind` now.

        Raises:
            ValueError: an unknown kind.
            RuntimeError: the floor saw errors (it never should).
        """
        assert self._unary is not None, "enter the FloorBeside first"
        config = self._config
        if kind == "latency":
            block = -(-config.floor_latency_count // LATENCY_BLOCKS)
            self._latency_samples += await latencies(self._unary, block, self._errors)
        elif kind == "latency end":
            if not self._latency_samples:
                raise RuntimeError(f"every floor call failed: {dict(self._errors.counts)} {self._errors.examples}")
            self._rounds["latency"].append(percentile(self._latency_samples, 50) * 1e6)
            self._latency_samples = []
        elif kind == "sequential":
            # As many calls as the scenario's one-by-one round makes (or the latency round's, if more): a slow
            # second of the machine weighs the same on both.
            count = max(config.floor_latency_count, config.daemon_burst)
            _, _, per_second = await latency_round(self._unary, count, self._errors)
            self._rounds[kind].append(per_second)
        elif kind == "throughput":
            self._rounds[kind].append(await throughput(self._unary, config.floor_throughput_count, 256, self._errors))
        elif kind == "chunks":
            assert self._channel is not None
            method = self._channel.unary_stream(CHUNKS, None, None)
            if not self._rounds[kind]:  # (the first round is warmed up: its first call is not a round)
                await chunk_stream(method, config.stream_warmup_chunks, config.stream_chunk_bytes)
            self._rounds[kind].append(await chunk_stream(method, config.stream_chunks, config.stream_chunk_bytes))
        else:
            raise ValueError(f"no floor round of kind {kind[:40]!r}; kinds: {', '.join(self.KINDS)}")
        if self._errors.total:
            raise RuntimeError(f"the bare gRPC floor saw errors: {dict(self._errors.counts)} {self._errors.examples}")

    def figures(self, prefix: str) -> dict[str, Figure]:
        """The rounds made so far (kinds without any are left out)."""
        names = {
            "latency": "floor_unary_p50_us",
            "throughput": "floor_unary_throughput_256",
            "sequential": "floor_unary_sequential_per_s",
            "chunks": "floor_chunks_per_s",
        }
        return {f"{prefix}{names[kind]}": Figure(tuple(made)) for kind, made in self._rounds.items() if made}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
