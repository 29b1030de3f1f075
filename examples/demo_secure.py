"""`make demo-secure`: the system with mTLS and tokens, as real processes.

It writes development certificates (`wa certs init`) and a token file into a temporary directory, starts
`wa registry`, a `wa worker` (TextStatsWorker) and `wa orchestrator` with mutual TLS and token checks,
then shows three calls of `wa submit` over TLS: one with the client's token (it completes), one without a
token (UNAUTHENTICATED) and one with a token whose role may not submit (PERMISSION_DENIED). The registry
and the worker also require client certificates (mTLS); the daemon knows its callers by their tokens. It
stops every process it started and exits 0 only when all three behaved as expected.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

from worker_abstraction import certs

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 30.0
CALL_SECONDS = 60.0


async def wa(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker_abstraction.cli", *args, cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(CALL_SECONDS):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, out.decode()


async def start(log: Path, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker_abstraction.cli", *args, cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(READY_SECONDS):
        line = (await process.stdout.readline()).decode().strip()
    if " listening on " not in line:
        process.kill()
        said = log.read_text()[-2000:]  # noqa: ASYNC240  (one small read, on the way out)
        raise RuntimeError(f"wa {args[0]} did not start: {line!r}\n{said}")
    return process, line.rsplit(" ", 1)[-1]


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wa-secure-") as scratch:
        pki = Path(scratch) / "pki"
        certs.init_dir(pki)  # what `wa certs init DIR` writes
        daemon_token, worker_token, client, operator = (secrets.token_urlsafe(24) for _ in range(4))
        # One in 64 such tokens begins with '-': passed as --token=VALUE, it is never taken for an option.
        # One role per principal: the daemon, the worker, a client, and an intruder with a worker's role.
        tokens = Path(scratch) / "tokens.toml"
        tokens.write_text(
            f'[[principal]]\nname = "orchestrator/demo"\nroles = ["orchestrator"]\ntoken = "{daemon_token}"\n\n'
            f'[[principal]]\nname = "worker/demo"\nroles = ["worker"]\ntoken = "{worker_token}"\n\n'
            f'[[principal]]\nname = "client/alice"\nroles = ["client"]\ntoken = "{client}"\n\n'
            f'[[principal]]\nname = "worker/intruder"\nroles = ["worker"]\ntoken = "{operator}"\n'
        )
        ca = ("--tls-ca", str(pki / "ca.pem"))

        def identity(stem: str) -> tuple[str, ...]:
            return ("--tls-cert", str(pki / f"{stem}.pem"), "--tls-key", str(pki / f"{stem}.key"), *ca)

        checked = ("--auth-tokens", str(tokens))
        serve = (*identity("server"), "--tls-client-auth", *checked)  # the registry calls nobody: no token
        processes: list[asyncio.subprocess.Process] = []
        try:
            logs = Path(scratch)
            registry, registry_address = await start(logs / "registry.log", "registry", "--port", "0", *serve)
            processes.append(registry)
            worker_flags = (*identity("worker"), "--tls-client-auth", *checked, f"--token={worker_token}")
            at_registry = ("--port", "0", "--registry", registry_address)
            worker_class = "examples.text_stats:TextStatsWorker"
            worker, _ = await start(logs / "worker.log", "worker", worker_class, *at_registry, *worker_flags)
            processes.append(worker)
            # The daemon serves callers over TLS and knows them by their tokens (no client certificates).
            daemon_flags = (*identity("server"), *checked, f"--token={daemon_token}", "--store", ":memory:")
            daemon, daemon_address = await start(logs / "daemon.log", "orchestrator", *at_registry, *daemon_flags)
            processes.append(daemon)
            print(f"registry {registry_address} (mTLS and tokens), daemon {daemon_address} (TLS and tokens)\n")

            submit = ("submit", "text_stats", "-p", "text=secure hello", "--orchestrator", daemon_address)
            checks = [
                ("alice, with her token", (*ca, f"--token={client}"), 0, "COMPLETED"),
                ("no token", ca, 1, "UNAUTHENTICATED"),
                ("a worker's token submitting a task", (*ca, f"--token={operator}"), 1, "PERMISSION_DENIED"),
            ]
            failed = 0
            for title, flags, want_code, want_text in checks:
                code, out = await wa(*submit, *flags)
                ok = (code == 0) == (want_code == 0) and want_text in out
                failed += not ok
                print(f"== {title}: exit {code} ({'as expected' if ok else 'NOT as expected'})")
                lines = out.strip().splitlines()
                print("   " + "\n   ".join(lines[:3] if ok else lines[-12:]) + "\n")
            return 1 if failed else 0
        finally:
            for process in reversed(processes):
                if process.returncode is None:
                    process.terminate()
                    try:
                        async with asyncio.timeout(10):
                            await process.wait()
                    except TimeoutError:
                        process.kill()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
