"""Child processes (registry, workers, floor server, load generator) and what /proc says about them.

Every child runs in its own session, so a Ctrl-C reaches only the bench, which then stops them all:
SIGTERM, a grace period, then SIGKILL. `kill_leftovers()` is the last resort once the event loop is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0

# pids of every child still believed alive, across all `Children` groups (for `kill_leftovers`).
_LIVE: set[int] = set()


@dataclass
class Child:
    """A started process and the readiness line it printed (`... listening on HOST:PORT`)."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    ready_line: str = ""
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return self.ready_line.rsplit(" ", 1)[-1]

    async def read_line(self, timeout_seconds: float) -> str:
        """The next stdout line (without the newline).

        Raises:
            RuntimeError: the process ended or said nothing in time (its log tail is in the message).
        """
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout_seconds):
                raw = await self.process.stdout.readline()
        except TimeoutError:
            raise RuntimeError(f"{self.name} printed nothing for {timeout_seconds:g}s{self._log_tail()}") from None
        if not raw:
            code = await self.process.wait()
            raise RuntimeError(f"{self.name} exited with code {code}{self._log_tail()}")
        return raw.decode().rstrip("\n")

    async def send_line(self, line: str) -> None:
        """Write one line to the child's stdin (started with `stdin=True`)."""
        assert self.process.stdin is not None, "started without stdin"
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def read_event(self, expected: str, timeout_seconds: float = 120.0) -> dict[str, Any]:
        """The next stdout line as a JSON object, which must be `{"event": expected, ...}`.

        Raises:
            RuntimeError: the process ended, said nothing in time, or said something else.
        """
        line = await self.read_line(timeout_seconds)
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:
            event = {}
        if event.get("event") != expected:
            raise RuntimeError(f"{self.name} said {line!r}, expected a {expected!r} event{self._log_tail()}")
        return event

    def drain_stdout(self) -> None:
        """Keep reading stdout in the background so the child never blocks on a full pipe."""

        async def drain() -> None:
            assert self.process.stdout is not None
            while await self.process.stdout.read(65536):
                pass

        self._drain = asyncio.create_task(drain())

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n  " + "\n  ".join(tail) if tail else ""


class Children:
    """Starts processes and, on exit (Ctrl-C and errors included), stops every one it started."""

    def __init__(self, log_dir: Path, *, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.env["PYTHONUNBUFFERED"] = "1"
        self._children: list[Child] = []

    async def start(
        self, name: str, *args: str, ready_prefix: str | None = None, drain: bool = True, stdin: bool = False
    ) -> Child:
        """Run `python ARGS...` from the repo root; wait for a stdout line starting with `ready_prefix`.
        With `stdin`, the child reads what `Child.send_line` sends (else it reads nothing).

        Raises:
            RuntimeError: the process exited or did not get ready in time.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                PYTHON,
                *args,
                cwd=REPO,
                env=self.env,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        _LIVE.add(process.pid)
        child = Child(name, process, log_path)
        self._children.append(child)
        if ready_prefix is not None:
            line = await child.read_line(STARTUP_SECONDS)
            while not line.startswith(ready_prefix):
                line = await child.read_line(STARTUP_SECONDS)
            child.ready_line = line
        if drain:
            child.drain_stdout()
        return child

    async def stop(self, child: Child) -> int:
        """SIGTERM, then SIGKILL after STOP_SECONDS; returns the exit code."""
        process = child.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        _LIVE.discard(process.pid)
        if child._drain is not None:
            child._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await child._drain
        assert process.returncode is not None
        return process.returncode

    async def aclose(self) -> None:
        children, self._children = self._children, []
        # shield: a second Ctrl-C while stopping must not leave processes behind.
        await asyncio.shield(asyncio.gather(*(self.stop(c) for c in children), return_exceptions=True))

    async def __aenter__(self) -> Children:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def kill_leftovers() -> None:
    """SIGKILL any child still alive; for use after the event loop has gone (e.g. a second Ctrl-C)."""
    for pid in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        _LIVE.discard(pid)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size in MiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (scanning /proc: this kernel may lack /proc/PID/task/TID/children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:  # field 4 of proc(5): the parent's pid
            found.append(int(entry.name))
    return found


class CpuWatch:
    """CPU share (fraction of one core) of some processes between `start()` and `stop()`, summed over every
    such span (a scenario whose rounds alternate with the floor's watches its own rounds only); `spans` keeps
    each span's CPU seconds per process, so that a figure can be given per round."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.shares: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.spans: list[dict[str, float]] = []
        self._wall = 0.0
        self._started: tuple[float, dict[str, float]] | None = None

    def start(self) -> None:
        self._started = (time.perf_counter(), {name: cpu_seconds(pid) for name, pid in self.pids.items()})

    def stop(self) -> dict[str, float]:
        assert self._started is not None, "stop() before start()"
        began, cpu_before = self._started
        self._started = None
        self._wall += time.perf_counter() - began
        span = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in self.pids.items()}
        self.spans.append(span)
        for name, used in span.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + used
        self.shares = {name: used / self._wall for name, used in self.seconds.items()}
        return self.shares

    def per_call_us(self, calls: int) -> dict[str, float]:
        """CPU microseconds each process spent per call, over `calls` calls made while watching."""
        return {name: used / calls * 1e6 for name, used in self.seconds.items()}

    def per_call_us_by_kind(self, calls: int) -> dict[str, float]:
        """`per_call_us` with each kind's sum and the total added (see `with_kind_totals`)."""
        return with_kind_totals(self.per_call_us(calls))


# A watched process is named for its kind, alone (`daemon`) or numbered among several of it (`daemon_1`, `worker_0`).
_KINDS = {"caller": "caller", "daemon": "daemon", "nats": "nats", "worker": "workers"}


def process_kind(name: str) -> str:
    """The kind a watched process's name belongs to (`daemon_2` -> `daemon`, `worker_0` -> `workers`)."""
    base = name.rstrip("0123456789").removesuffix("_") if name[-1:].isdigit() else name
    return _KINDS.get(base, base)


def with_kind_totals(per_process: dict[str, float]) -> dict[str, float]:
    """Per-process figures, plus under each kind's bare name (`caller`, `daemon`, `nats`, `workers`) the sum of
    its processes, and under `total` the sum of all: bare names are kinds, numbered names single processes."""
    out = dict(per_process)
    kinds: dict[str, float] = {}
    for name, value in per_process.items():
        kinds[process_kind(name)] = kinds.get(process_kind(name), 0.0) + value
    out.update(kinds)
    out["total"] = sum(per_process.values())
    return out


def system_busy_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (the `cpu` line of /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def own_tree_seconds() -> float:
    """CPU seconds used by this process and by every child it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class ForeignCpu:
    """CPU used on the machine by anything but this process and its children, as a share of one core.

    A benchmark on a shared machine is only as good as the machine was quiet; this says how quiet.
    """

    def __init__(self) -> None:
        self._began = (time.perf_counter(), system_busy_seconds(), own_tree_seconds())

    def share(self) -> float:
        wall0, busy0, own0 = self._began
        wall = time.perf_counter() - wall0
        foreign = (system_busy_seconds() - busy0) - (own_tree_seconds() - own0)
        return max(0.0, foreign) / wall
