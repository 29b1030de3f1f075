"""`wa workers` in-process against a real registry on 127.0.0.1:0: the STATE column and JSON keys."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from worker_abstraction import RegistryServer, WorkerInfo
from worker_abstraction.cli.main import build_parser

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server() -> AsyncIterator[RegistryServer]:
    # A long TTL: only the test ages workers, by moving their last heartbeat back and sweeping once.
    async with RegistryServer(port=0, ttl_seconds=60, suspect_after_seconds=40) as server:
        for worker_id, port in (("calm", 6001), ("quiet", 6002)):
            await server.registry.register(WorkerInfo(worker_id=worker_id, name=worker_id, address=f"127.0.0.1:{port}"))
        record = await server.registry.store.get("quiet")
        assert record is not None
        record.last_seen = time.time() - 45
        assert await server.registry.sweep() == (1, 0)
        yield server


async def wa_workers(server: RegistryServer, *flags: str) -> None:
    args = build_parser().parse_args(["workers", "--registry", server.address, *flags])
    assert await args.run(args) == 0


async def test_workers_json_has_state_and_reason(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    await wa_workers(server, "--json")
    listing = {w["worker_id"]: w for w in json.loads(capsys.readouterr().out)}
    assert (listing["calm"]["state"], listing["calm"]["state_reason"]) == ("ACTIVE", "")
    assert (listing["quiet"]["state"], listing["quiet"]["state_reason"]) == ("SUSPECT", "no heartbeat for 45.0s")


async def test_workers_table_has_a_state_column(server: RegistryServer, capsys: pytest.CaptureFixture[str]) -> None:
    await wa_workers(server)
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "STATE"
    by_id = {row.split()[0]: row for row in rows}
    assert by_id["calm"].rstrip().endswith("ACTIVE")
    assert by_id["quiet"].rstrip().endswith("SUSPECT (no heartbeat for 45.0s)")
