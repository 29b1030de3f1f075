"""A registry, a worker and an orchestrator daemon as real `wa` processes, for the fuzz harness.

The fuzz tests are synchronous (hypothesis drives plain functions), so the processes are `subprocess.Popen`s
with stdout and stderr in files: the readiness line is read from the stdout file, and the stderr files are
what the log-size oracle measures. Each process's resident memory comes from /proc.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
STARTUP_SECONDS = 20.0
# Short enough that fuzzed registrations (which never heartbeat) leave the registry during a run.
REGISTRY_TTL_SECONDS = 3.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Proc:
    """One started `wa` process and the files its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    ready_line: str = ""

    @property
    def address(self) -> str:
        return self.ready_line.rsplit(" ", 1)[-1]

    @property
    def worker_id(self) -> str:
        return self.ready_line.split()[1]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_bytes(self) -> int:
        return self.stderr_path.stat().st_size + self.stdout_path.stat().st_size

    def rss_bytes(self) -> int:
        try:
            status = Path(f"/proc/{self.popen.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stderr_tail(self, chars: int = 2000) -> str:
        return self.stderr_path.read_text(errors="replace")[-chars:]


def _start(name: str, args: list[str], workdir: Path) -> Proc:
    stdout_path, stderr_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        popen = subprocess.Popen(
            [sys.executable, "-m", "worker_abstraction.cli", *args], cwd=HERE, env=_env(), stdout=out, stderr=err
        )
    proc = Proc(name, popen, stdout_path, stderr_path)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and proc.alive():
        text = stdout_path.read_text(errors="replace")
        if " listening on " in text:
            proc.ready_line = text.splitlines()[0].strip()
            return proc
        time.sleep(0.05)
    popen.kill()
    popen.wait()
    raise RuntimeError(f"wa {' '.join(args)} never became ready; stderr:\n{proc.stderr_tail()}")


@dataclass
class Cluster:
    """The three processes; `start` and `stop` bracket a test module."""

    workdir: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    generation: int = 0

    def start(self) -> None:
        self.generation += 1
        gen = self.generation
        registry = _start(
            f"registry-{gen}", ["registry", "--port", "0", "--ttl", str(REGISTRY_TTL_SECONDS)], self.workdir
        )
        self.procs["registry"] = registry
        self.procs["worker"] = _start(
            f"worker-{gen}",
            ["worker", "_fuzz_workers:FuzzWorker", "--port", "0", "--registry", registry.address,
             "--heartbeat-interval", "0.5"],
            self.workdir,
        )  # fmt: skip
        store = self.workdir / f"tasks-{gen}.db"
        self.procs["daemon"] = _start(
            f"daemon-{gen}",
            ["orchestrator", "--port", "0", "--registry", registry.address, "--store", str(store)],
            self.workdir,
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.alive():
                proc.popen.terminate()
        for proc in self.procs.values():
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()

    def restart(self) -> None:
        """After a crash: every process anew (new ports), so later cases still reach live servers."""
        self.stop()
        self.procs.clear()
        self.start()

    def dead(self) -> list[Proc]:
        return [proc for proc in self.procs.values() if not proc.alive()]

    def address(self, service: str) -> str:
        return self.procs[{"RegistryService": "registry", "WorkerService": "worker"}.get(service, "daemon")].address

    def proc_for(self, service: str) -> Proc:
        return self.procs[{"RegistryService": "registry", "WorkerService": "worker"}.get(service, "daemon")]
