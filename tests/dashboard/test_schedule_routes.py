"""The dashboard's schedule routes over HTTP, against the real uvicorn server a daemon runs: the list, one
schedule with its next occurrences and recent runs, pause / resume / trigger (the dashboard header and the
operator rule as for the task buttons), unknown and hostile names, and the bounds on what one answer holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.dashboard.conftest import CLIENT, OPERATOR, POST, DashboardDaemon
from worker_abstraction import RegistryServer, TaskStatus
from worker_abstraction.auth import Authenticator
from worker_abstraction.dashboard import schedule_routes
from worker_abstraction.schedules import Schedule

pytestmark = pytest.mark.timeout(30)

HOSTILE = '<img src=x onerror="alert(1)">'


@pytest.fixture
async def web(daemon: DashboardDaemon) -> AsyncIterator[httpx.AsyncClient]:
    assert daemon.dashboard is not None
    async with httpx.AsyncClient(base_url=daemon.dashboard.url, timeout=10) as client:
        yield client


async def triggered(daemon: DashboardDaemon, web: httpx.AsyncClient, name: str) -> str:
    """Run the schedule once through the dashboard's button route, to its end; the run's task id."""
    answer = await web.post(f"/api/schedules/{name}/trigger", headers=POST)
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["task_id"]
    assert (await (await daemon.orchestrator.watch(task_id)).wait(timeout_seconds=10)).status is TaskStatus.COMPLETED
    return task_id


def epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


async def test_the_list_shows_each_schedule_with_its_timing_next_occurrence_and_last_run(
    daemon: DashboardDaemon, web: httpx.AsyncClient
) -> None:
    hourly = Schedule("hourly", "echo", {"text": "h"}, cron="0 * * * *", timezone="Europe/Paris", description=HOSTILE)
    await daemon.orchestrator.add_schedule(hourly)
    await daemon.orchestrator.add_schedule(Schedule("daily", "echo", {"text": "d"}, every_seconds=86_400, paused=True))
    flow = {"workflow": "pair", "steps": [{"name": "a", "capability": "echo", "params": {"text": "a"}},
                                          {"name": "b", "capability": "echo", "params": {"text": "b"}}]}  # fmt: skip
    await daemon.orchestrator.add_schedule(Schedule.of_workflow("flows", flow, cron="@daily"))
    run = await triggered(daemon, web, "hourly")

    answer = await web.get("/api/schedules")
    assert answer.status_code == 200
    listed = answer.json()
    assert listed["total"] == 3 and [row["name"] for row in listed["schedules"]] == ["daily", "flows", "hourly"]
    daily, flows, shown = listed["schedules"]
    info = await daemon.orchestrator.schedule("hourly")
    assert shown == {
        "name": "hourly",
        "runs": {"kind": "task", "capability": "echo", "workflow": None, "steps": None},
        "timing": {"cron": "0 * * * *", "every_seconds": 0, "timezone": "Europe/Paris", "start_at": None,
                   "text": "cron 0 * * * * (Europe/Paris)"},
        "next_occurrence": epoch(info.next_occurrence),
        "paused": False,
        "fired": 1,
        "skipped": 0,
        "last_run": {"task_id": run, "status": "COMPLETED"},
        "last_occurrence": None,
        "last_error": "",
        "description": HOSTILE,  # as text: the page escapes it
        "owner": "",
    }  # fmt: skip
    assert run.startswith("hourly@manual-")
    assert (daily["paused"], daily["next_occurrence"], daily["timing"]["text"]) == (True, None, "every 1d")
    assert flows["runs"] == {"kind": "workflow", "capability": "wa.workflow", "workflow": "pair", "steps": 2}
    for page in ("/schedules", "/schedules/hourly"):
        served = await web.get(page)
        assert (
            served.status_code == 200 and "/static/schedules.js" in served.text and 'href="/schedules"' in served.text
        )


async def test_one_schedule_shows_its_next_occurrences_and_recent_runs_newest_first(
    daemon: DashboardDaemon, web: httpx.AsyncClient
) -> None:
    nightly = Schedule("nightly", "echo", {"text": "n"}, cron="30 2 * * *", timezone="America/New_York",
                       overlap="buffer_one", missed="all", grace_seconds=7200)  # fmt: skip
    await daemon.orchestrator.add_schedule(nightly)
    runs = [await triggered(daemon, web, "nightly") for _ in range(2)]
    found = (await web.get("/api/schedules/nightly")).json()
    assert (found["overlap"], found["missed"], found["grace_seconds"]) == ("buffer_one", "all", 7200)
    assert found["params"] == '{"text":"n"}' and found["options"] == ""
    assert found["may"] == {"pause": True, "resume": False, "trigger": True}
    upcoming = found["next_occurrences"]
    assert len(upcoming) == 10 and upcoming == sorted(upcoming) and upcoming[0] == found["next_occurrence"]
    zone_times = {
        datetime.fromtimestamp(at, UTC).astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") for at in upcoming
    }
    assert zone_times <= {"02:30", "03:30"}  # (03:30 on the day 02:30 does not exist)
    assert [run["task_id"] for run in found["recent_runs"]] == list(reversed(runs))
    assert {run["status"] for run in found["recent_runs"]} == {"COMPLETED"} and found["more_runs"] is False
    assert found["last_run"] == {"task_id": runs[-1], "status": "COMPLETED"} and found["fired"] == 2


async def test_pause_resume_and_trigger_need_the_dashboard_header_and_change_the_schedule(
    daemon: DashboardDaemon, web: httpx.AsyncClient
) -> None:
    await daemon.orchestrator.add_schedule(Schedule("beat", "echo", {"text": "b"}, cron="0 0 1 1 *"))
    for action in ("pause", "resume", "trigger"):
        assert (await web.post(f"/api/schedules/beat/{action}")).status_code == 403  # no X-WA-Dashboard header
    assert (await daemon.orchestrator.schedule("beat")).state.fired == 0

    paused = await web.post("/api/schedules/beat/pause", headers=POST)
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["next_occurrence"] is None
    found = (await web.get("/api/schedules/beat")).json()
    assert found["may"] == {"pause": False, "resume": True, "trigger": True} and found["next_occurrences"] == []
    assert (await daemon.orchestrator.schedule("beat")).schedule.paused

    for hostile in (b"{", b"[]", b'{"run_now": "yes"}', b'{"colour": 1}', b"[" * 900, b" " * 2000):
        assert (await web.post("/api/schedules/beat/resume", headers=POST, content=hostile)).status_code == 400
    resumed = await web.post("/api/schedules/beat/resume", headers=POST, json={"run_now": True})
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    info = await daemon.orchestrator.schedule("beat")
    assert info.next_occurrence is not None and resumed.json()["next_occurrence"] == info.next_occurrence.timestamp()
    assert info.state.last_run.startswith("beat@manual-") and info.state.fired == 1  # run now: one run
    assert (await web.post("/api/schedules/beat/resume", headers=POST)).status_code == 200  # (empty body: no run)
    assert (await daemon.orchestrator.schedule("beat")).state.fired == 1


async def test_unknown_and_hostile_names_are_404_with_a_short_answer(web: httpx.AsyncClient) -> None:
    for name in ("nope", HOSTILE, "x" * 5000, "a/b", "%00"):
        for answer in (
            await web.get(f"/api/schedules/{name}"),
            *[
                await web.post(f"/api/schedules/{name}/{action}", headers=POST)
                for action in ("pause", "resume", "trigger")
            ],
        ):
            assert answer.status_code == 404, (name[:20], answer.text[:200])
            assert len(answer.content) < 400 and answer.json()["error"].startswith("no schedule is named ")
    assert (await web.get("/api/schedules")).json() == {"schedules": [], "total": 0}


async def test_answers_are_bounded(
    daemon: DashboardDaemon, web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule_routes, "MAX_LISTED", 3)
    monkeypatch.setattr(schedule_routes, "STATUS_READS", 1)
    monkeypatch.setattr(schedule_routes, "RECENT_RUNS", 2)
    long = "y" * 1000
    for n in range(5):
        await daemon.orchestrator.add_schedule(
            Schedule(f"s{n}", "echo", {"text": "x"}, cron="@yearly", description=long)
        )
    runs = [await triggered(daemon, web, "s0") for _ in range(3)]
    await triggered(daemon, web, "s1")
    listed = (await web.get("/api/schedules")).json()
    assert listed["total"] == 5 and [row["name"] for row in listed["schedules"]] == ["s0", "s1", "s2"]
    assert listed["schedules"][0]["last_run"]["status"] == "COMPLETED"
    assert listed["schedules"][1]["last_run"]["status"] is None  # past STATUS_READS: not read
    assert len(listed["schedules"][0]["description"]) < 300
    one = (await web.get("/api/schedules/s0")).json()
    assert [run["task_id"] for run in one["recent_runs"]] == [runs[2], runs[1]] and one["more_runs"] is True
    assert one["description"] == long  # (a schedule's own page shows it whole: at most 1000 characters)


async def test_with_auth_only_operators_may_see_or_touch_schedules(
    registry: RegistryServer, daemon: DashboardDaemon, authenticator: Authenticator
) -> None:
    async with DashboardDaemon(registry.address, auth=authenticator) as secured:
        assert secured.dashboard is not None
        await secured.orchestrator.add_schedule(Schedule("guarded", "echo", {"text": "g"}, cron="@yearly"))
        async with httpx.AsyncClient(base_url=secured.dashboard.url, timeout=10) as web:
            client = {"Authorization": f"Bearer {CLIENT}"}
            operator = {"Authorization": f"Bearer {OPERATOR}"}
            assert (await web.get("/api/schedules")).status_code == 401
            assert (await web.get("/api/schedules/guarded", headers=client)).status_code == 403
            for action in ("pause", "resume", "trigger"):
                refused = await web.post(f"/api/schedules/guarded/{action}", headers={**POST, **client})
                assert refused.status_code == 403
            assert (await web.get("/schedules/guarded")).status_code == 401  # the sign-in form
            assert not (await secured.orchestrator.schedule("guarded")).schedule.paused
            found = await web.get("/api/schedules/guarded", headers=operator)
            assert found.status_code == 200 and found.json()["may"]["pause"] is True
            assert (await web.post("/api/schedules/guarded/pause", headers={**POST, **operator})).status_code == 200
            assert (await secured.orchestrator.schedule("guarded")).schedule.paused
