"""`--metrics-port` on `wa registry`, `wa worker` and `wa orchestrator`: each process serves its own metrics."""

from __future__ import annotations

import re
from pathlib import Path

from processes import FAST_REGISTRY, FAST_WORKER, Daemon, Start, wa

from tests.conftest import eventually
from tests.observability.test_metrics import scrape, value
from tests.observability.test_metrics_security import CLIENT, OPERATOR, TOKENS, client_context, get
from worker_abstraction import RemoteOrchestrator, TaskStatus, certs

_URL = re.compile(r"serving metrics at (https?://\S+)")


async def metrics_url(daemon: Daemon) -> str:
    """The URL the daemon logged (it serves before it prints its readiness line, so the line is there)."""
    found = _URL.search(daemon.stderr_path.read_text())
    assert found, f"no metrics URL in stderr:\n{daemon.stderr_path.read_text()}"
    return found.group(1)


async def test_each_daemon_serves_its_metrics_on_the_metrics_port(start: Start) -> None:
    metrics = ("--metrics-port", "0")
    registry = await start("registry", "--port", "0", *FAST_REGISTRY, *metrics)
    worker = await start(
        "worker", "_workers:EchoWorker", "--port", "0", "--registry", registry.address, *FAST_WORKER, *metrics
    )
    daemon = await start("orchestrator", "--port", "0", "--registry", registry.address, "--store", ":memory:", *metrics)
    urls = {name: await metrics_url(d) for name, d in (("registry", registry), ("worker", worker), ("daemon", daemon))}
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values()), urls
    async with RemoteOrchestrator(daemon.address) as remote:
        await remote.wait_for_workers("shout", timeout_seconds=20)
        handles = [await remote.execute_task("shout", {"text": str(n)}) for n in range(3)]
        handles.append(await remote.execute_task("explode", {}))
        finals = [(await handle.wait(timeout_seconds=20)).status for handle in handles]
    assert finals == [TaskStatus.COMPLETED] * 3 + [TaskStatus.FAILED]

    samples = await scrape(urls["daemon"])
    assert value(samples, "wa_tasks_total", capability="shout", status="COMPLETED") == 3
    assert value(samples, "wa_tasks_total", capability="explode", status="FAILED") == 1
    assert value(samples, "wa_tasks_in_flight", worker_id=worker.worker_id) == 0
    assert value(samples, "wa_worker_tasks_total", capability="shout", status="COMPLETED") is None  # the worker's

    async def worker_counted() -> bool:
        found = await scrape(urls["worker"])
        return value(found, "wa_worker_tasks_total", capability="shout", status="COMPLETED") == 3

    await eventually(worker_counted, timeout_seconds=10, what="the worker counted its three tasks")
    samples = await scrape(urls["registry"])
    assert value(samples, "wa_workers", state="ACTIVE") == 1
    assert value(samples, "wa_worker_registrations_total") == 1


async def test_the_config_file_turns_metrics_on_and_a_taken_port_stops_the_daemon(start: Start, tmp_path: Path) -> None:
    config = tmp_path / "wa.toml"
    config.write_text("metrics_port = 0\n")
    registry = await start("registry", "--port", "0", "--config", str(config))
    taken = (await metrics_url(registry)).rsplit(":", 1)[1].split("/")[0]
    result = await wa("registry", "--port", "0", "--metrics-port", taken)
    assert result.code == 1 and "BindError" in result.err and "metrics" in result.err
    assert "listening on" not in result.out


async def test_a_daemon_with_tls_and_a_token_file_serves_metrics_over_https_to_operators(
    start: Start, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    certs.init_dir(pki)
    (tmp_path / "tokens.toml").write_text(TOKENS)
    tls = ("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"), "--tls-ca", str(pki / "ca.pem"))
    registry = await start(
        "registry", "--port", "0", *tls, "--auth-tokens", str(tmp_path / "tokens.toml"), "--metrics-port", "0"
    )
    url = await metrics_url(registry)
    assert url.startswith("https://127.0.0.1:"), url
    context = client_context(pki)
    assert (await get(url, context=context))[0] == 401
    assert (await get(url, context=context, token=CLIENT))[0] == 403
    status, body = await get(url, context=context, token=OPERATOR)
    assert status == 200 and "wa_workers" in body
