"""Load generator for the registry: many simulated workers in one process, speaking the raw RPCs.

    python -m bench.loadgen heartbeat --registry ADDR --workers 2000 --warmup 3 --window 10 --rounds 3 [--rate 1]
    python -m bench.loadgen calibrate --registry ADDR --workers 2000 --rates 1,0.5,0.25 --warmup 1 --window 2
    python -m bench.loadgen register --registry ADDR --workers 10000

Each simulated worker is one `RegisterWorker` with a realistic description (two capabilities with
parameters, a unique address), then, in `heartbeat` mode, one `WorkerHeartbeat` per second, the workers'
beats spread evenly over the second. Progress goes to stdout as JSON lines, so the bench can sample the
registry's CPU exactly over each window:

    {"event": "registered", "seconds": ..., "errors": ...}
    {"event": "window_start", "round": 1}
    {"event": "window_end", "round": 1, "p50_ms": ..., "p99_ms": ..., "beats": ..., "errors": ..., ...}
    {"event": "done"}

`calibrate` finds the load a server answering a constant (the floor) carries with its latency near an idle
call's: it measures beats sent one at a time, then each rate per worker in turn, from the highest, until one
is sound (`bench.measure.loaded_latency_is_sound`):

    {"event": "registered", ...}
    {"event": "unloaded", "p50_ms": ..., "p99_ms": ...}
    {"event": "step", "rate": 1.0, "sound": false, "p50_ms": ..., ...}
    {"event": "calibrated", "rate": 0.5}   (the lowest rate tried when none is sound)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import grpc
from grpc import aio

from bench.loops import run
from bench.measure import loaded_latency_is_sound, percentile
from worker_abstraction import collector
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction._proto import worker_pb2_grpc as pb_grpc

RPC_TIMEOUT_SECONDS = 10.0
# Registration keeps this many calls going at once, as a fleet starting up would.
REGISTER_IN_FLIGHT = 64
TICK_SECONDS = 0.005
# Beats sent one at a time to measure an idle call, over this many workers' streams (opened first).
UNLOADED_BEATS = 300
UNLOADED_WORKERS = 30


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def worker_info(index: int) -> pb.WorkerInfo:
    """The description of simulated worker `index`: unique id and address, two capabilities."""
    return pb.WorkerInfo(
        worker_id=f"sim-{index:06d}",
        name=f"SimWorker{index}",
        version="1.0.0",
        # A unique address per worker: the registry replaces a worker that re-registers at a known address.
        address=f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}:50051",
        tags=["sim", "cpu"],
        capabilities=[
            pb.ToolCapability(
                name="summarize",
                description="Summarize a text.",
                parameters=[
                    pb.ToolParameter(name="text", type="string", description="the text", required=True),
                    pb.ToolParameter(name="max_words", type="integer", description="summary length"),
                ],
            ),
            pb.ToolCapability(
                name="translate",
                description="Translate a text.",
                parameters=[
                    pb.ToolParameter(name="text", type="string", description="the text", required=True),
                    pb.ToolParameter(name="target", type="string", description="language code", required=True),
                ],
            ),
        ],
    )


class Fleet:
    """The simulated workers' stubs: `channels` connections shared round-robin by the workers."""

    def __init__(self, registry: str, workers: int, channels: int) -> None:
        self.workers = workers
        # A local subchannel pool gives each channel its own TCP connection instead of one shared one.
        options = [("grpc.use_local_subchannel_pool", 1)]
        self._channels = [aio.insecure_channel(registry, options=options) for _ in range(max(1, channels))]
        self._stubs = [pb_grpc.RegistryServiceStub(c) for c in self._channels]
        self.errors: Counter[str] = Counter()

    def stub(self, index: int) -> pb_grpc.RegistryServiceStub:
        return self._stubs[index % len(self._stubs)]

    async def ready(self) -> None:
        await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 30) for c in self._channels))

    async def register_all(self) -> float:
        """Register every worker at REGISTER_IN_FLIGHT; returns the seconds it took."""
        next_index = 0

        async def lane() -> None:
            nonlocal next_index
            while next_index < self.workers:
                index, next_index = next_index, next_index + 1
                request = pb.RegisterWorkerRequest(worker_info=worker_info(index))
                try:
                    response = await self.stub(index).RegisterWorker(request, timeout=RPC_TIMEOUT_SECONDS)
                except grpc.RpcError as error:
                    self.errors[f"register:{error.code().name}"] += 1
                    continue
                if not response.success:
                    self.errors["register:refused"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(REGISTER_IN_FLIGHT)))
        return time.perf_counter() - start

    async def aclose(self) -> None:
        await asyncio.gather(*(c.close(None) for c in self._channels))


class Heartbeats:
    """One heartbeat per worker per second, spread evenly; latencies kept per send time."""

    def __init__(self, fleet: Fleet, rate_per_worker: float = 1.0, *, stream: bool = False) -> None:
        self.fleet = fleet
        # As our workers do: one HeartbeatStream per worker, one message per beat (else one unary call each).
        self.stream = stream
        self._calls: dict[int, Any] = {}
        self.rate = fleet.workers * rate_per_worker
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_tick_lag = 0.0
        self._pending: set[asyncio.Task[None]] = set()

    async def beat(self, index: int) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        request = pb.HeartbeatRequest(worker_id=f"sim-{index:06d}", current_load=index % 3)
        start = time.perf_counter()
        try:
            async with asyncio.timeout(RPC_TIMEOUT_SECONDS):  # a stuck stream must not stall the window
                send = self._beat_on_stream if self.stream else self._beat_unary
                response = await send(index, request)
        except grpc.RpcError as error:
            self.errors[error.code().name] += 1
            self._calls.pop(index, None)  # a broken stream is opened again by the next beat, as a worker does
            return
        except (asyncio.InvalidStateError, TimeoutError, ConnectionError) as error:
            self.errors[type(error).__name__] += 1
            broken = self._calls.pop(index, None)
            if broken is not None:
                broken.cancel()
            return
        finally:
            self.in_flight -= 1
        self.latencies.append(time.perf_counter() - start)
        if not response.success:
            self.errors["unknown_worker"] += 1

    async def _beat_on_stream(self, index: int, request: pb.HeartbeatRequest) -> Any:
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = self.fleet.stub(index).HeartbeatStream()
        await call.write(request)
        response = await call.read()
        if response is aio.EOF:
            raise ConnectionError("the registry ended the heartbeat stream")
        return response

    async def _beat_unary(self, index: int, request: pb.HeartbeatRequest) -> Any:
        return await self.fleet.stub(index).WorkerHeartbeat(request, timeout=RPC_TIMEOUT_SECONDS)

    async def run_for(self, seconds: float, start_beat: int) -> int:
        """Send beats at the fleet's rate for `seconds`; returns the index of the next beat to send."""
        began = time.perf_counter()
        sent = start_beat
        loop = asyncio.get_running_loop()
        while (elapsed := time.perf_counter() - began) < seconds:
            due = start_beat + int(elapsed * self.rate)
            while sent < due:
                task = loop.create_task(self.beat(sent % self.fleet.workers))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                sent += 1
            tick = time.perf_counter()
            await asyncio.sleep(TICK_SECONDS)
            self.max_tick_lag = max(self.max_tick_lag, time.perf_counter() - tick - TICK_SECONDS)
        return sent

    async def open_all(self) -> None:
        """One beat from every worker (REGISTER_IN_FLIGHT at a time), which opens its stream: the windows
        measure beats on open streams, as a fleet that has been up a while sends them. Then the objects made so
        far are frozen and collections come less often (`collector.tune`), so that the load generator's own
        collections do not stall its ticks (it is not what is measured)."""
        indexes = iter(range(self.fleet.workers))

        async def lane() -> None:
            for index in indexes:
                await self.beat(index)

        await asyncio.gather(*(lane() for _ in range(REGISTER_IN_FLIGHT)))
        self.window_report()
        collector.tune()

    async def unloaded(self, count: int, workers: int) -> dict[str, Any]:
        """Beats sent one at a time, each after the one before has its answer: an idle server's latency."""
        for sent in range(count):
            await self.beat(sent % workers)
        return self.window_report()

    async def settle(self) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending))

    def window_report(self) -> dict[str, Any]:
        samples = self.latencies
        report: dict[str, Any] = {
            "beats": len(samples),
            "errors": dict(self.errors),
            "max_in_flight": self.max_in_flight,
            "max_tick_lag_ms": round(self.max_tick_lag * 1000, 3),
            "p50_ms": percentile(samples, 50) * 1000 if samples else None,
            "p99_ms": percentile(samples, 99) * 1000 if samples else None,
            "max_ms": max(samples) * 1000 if samples else None,
        }
        self.latencies, self.errors = [], Counter()
        self.max_in_flight, self.max_tick_lag = self.in_flight, 0.0
        return report


async def heartbeat_mode(args: argparse.Namespace) -> None:
    fleet = Fleet(args.registry, args.workers, args.channels or args.workers)
    try:
        await fleet.ready()
        seconds = await fleet.register_all()
        emit("registered", seconds=seconds, errors=dict(fleet.errors))
        beats = Heartbeats(fleet, args.rate, stream=args.stream)
        await beats.open_all()
        next_beat = await beats.run_for(args.warmup, 0)
        beats.window_report()
        for round_ in range(1, args.rounds + 1):
            emit("window_start", round=round_)
            next_beat = await beats.run_for(args.window, next_beat)
            # Beats sent in the window and still in flight count for it; none are sent meanwhile.
            await beats.settle()
            emit("window_end", round=round_, **beats.window_report())
        emit("done")
    finally:
        await fleet.aclose()


async def calibrate_mode(args: argparse.Namespace) -> None:
    fleet = Fleet(args.registry, args.workers, args.channels or args.workers)
    try:
        await fleet.ready()
        seconds = await fleet.register_all()
        emit("registered", seconds=seconds, errors=dict(fleet.errors))
        beats = Heartbeats(fleet, stream=args.stream)
        await beats.open_all()
        idle = await beats.unloaded(UNLOADED_BEATS, min(UNLOADED_WORKERS, fleet.workers))
        emit("unloaded", **idle)
        rates = [float(rate) for rate in args.rates.split(",")]
        next_beat, chosen = 0, rates[-1]
        for rate in rates:
            beats.rate = fleet.workers * rate
            next_beat = await beats.run_for(args.warmup, next_beat)
            await beats.settle()
            beats.window_report()
            next_beat = await beats.run_for(args.window, next_beat)
            await beats.settle()
            step = beats.window_report()
            sound = step["p50_ms"] is not None and loaded_latency_is_sound(step["p50_ms"], idle["p50_ms"])
            emit("step", rate=rate, sound=sound, **step)
            if sound:
                chosen = rate
                break
        emit("calibrated", rate=chosen)
        emit("done")
    finally:
        await fleet.aclose()


async def register_mode(args: argparse.Namespace) -> None:
    fleet = Fleet(args.registry, args.workers, args.channels or REGISTER_IN_FLIGHT)
    try:
        await fleet.ready()
        seconds = await fleet.register_all()
        emit("registered", seconds=seconds, errors=dict(fleet.errors))
        emit("done")
    finally:
        await fleet.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["heartbeat", "calibrate", "register"])
    parser.add_argument("--registry", required=True, metavar="HOST:PORT")
    parser.add_argument("--stream", action="store_true", help="heartbeat over HeartbeatStream, as workers do")
    parser.add_argument("--workers", type=int, default=2_000)
    parser.add_argument(
        "--channels", type=int, default=0, help="connections to the registry (0: one per worker for heartbeat)"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="heartbeats per worker per second")
    parser.add_argument("--rates", default="1,0.5,0.25", help="calibrate: rates per worker to try, highest first")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of heartbeats before the windows")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per measured window")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = {"heartbeat": heartbeat_mode, "calibrate": calibrate_mode, "register": register_mode}
    run(modes[args.mode](args))


if __name__ == "__main__":
    main()
