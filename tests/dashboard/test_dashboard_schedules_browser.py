"""The dashboard's schedule pages in a real browser (Debian's Chromium driven by playwright, as in
test_dashboard_browser.py), against a real registry, worker and daemon: a schedule listed from the header's
link, paused with its button and shown paused, run now with its button and its run seen to appear and
complete, an every-second schedule's runs arriving without a reload, hostile text shown as text.

Skipped only when /usr/bin/chromium or the playwright package is missing (`make browser` installs Chromium).
Every wait is playwright's own (a selector or an expectation that retries until it holds or times out).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.dashboard.conftest import DashboardDaemon
from tests.dashboard.test_dashboard_browser import CHROMIUM, NO_CHROMIUM, NO_PLAYWRIGHT
from tests.dashboard.test_dashboard_pages_browser import browser_page, url
from tests.dashboard.test_dashboard_workflows_browser import keep_screenshot
from worker_abstraction.schedules import Schedule

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the dev extra installs it
    expect = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(expect is None, reason=NO_PLAYWRIGHT),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
    pytest.mark.timeout(60),
]

HOSTILE = '<img src=x onerror="window.hacked = 1">'


def row(name: str) -> str:
    return f'#schedules tr[data-schedule="{name}"]'


async def test_a_schedule_is_listed_paused_with_its_button_and_run_now_shows_its_run(
    daemon: DashboardDaemon, tmp_path: Path
) -> None:
    nightly = Schedule("nightly", "echo", {"text": "n"}, cron="30 2 * * *", timezone="America/New_York",
                       description=HOSTILE)  # fmt: skip
    await daemon.orchestrator.add_schedule(nightly)
    await daemon.orchestrator.add_schedule(Schedule("later", "echo", {"text": "l"}, every_seconds=3600, paused=True))
    async with browser_page() as page:
        await page.goto(url(daemon, "/"))
        await page.click("#nav-schedules")
        await page.wait_for_url(url(daemon, "/schedules"))
        await expect(page.locator("#nav-schedules.here")).to_be_visible()
        await expect(page.locator(row("nightly"))).to_contain_text("cron 30 2 * * * (America/New_York)")
        await expect(page.locator(f'{row("nightly")} [data-state="active"]')).to_be_visible()
        await expect(page.locator(row("nightly"))).to_contain_text("02:30:00 E")  # EST or EDT: its own zone
        await expect(page.locator(row("nightly"))).to_contain_text(HOSTILE)  # shown as text
        await expect(page.locator(f'{row("later")} [data-state="paused"]')).to_be_visible()
        assert await page.locator("#schedules img").count() == 0
        await keep_screenshot(page, tmp_path, "schedules.png")
        await page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads

        await page.click(f"{row('nightly')} a")
        await page.wait_for_url(url(daemon, "/schedules/nightly"))
        await expect(page.locator('#sc-state[data-state="active"]')).to_be_visible()
        await expect(page.locator("#sc-next li")).to_have_count(10)
        await expect(page.locator("#sc-runs-empty")).to_be_visible()

        await page.click("#sc-pause")
        await expect(page.locator('#sc-state[data-state="paused"]')).to_be_visible()
        await expect(page.locator("#sc-resume")).to_be_visible()
        await expect(page.locator("#sc-pause")).to_be_hidden()
        await expect(page.locator("#sc-next-none")).to_be_visible()
        assert (await daemon.orchestrator.schedule("nightly")).schedule.paused

        await page.click("#sc-trigger")
        triggered = page.locator("#sc-triggered")
        await expect(triggered).to_be_visible()
        task_id = await triggered.get_attribute("data-task-id")
        assert task_id is not None and task_id.startswith("nightly@manual-")
        await expect(page.locator(f'#sc-runs tr[data-task="{task_id}"][data-status="COMPLETED"]')).to_be_visible()
        await expect(page.locator("#sc-last-run")).to_contain_text("COMPLETED")
        await expect(page.locator("#sc-counts")).to_have_text("1 / 0")
        await keep_screenshot(page, tmp_path, "schedule.png")

        await page.click("#nav-schedules")
        await expect(page.locator(f'{row("nightly")} [data-state="paused"]')).to_be_visible()
        await expect(page.locator(f"{row('nightly')} .sc-last a")).to_have_attribute("href", f"/tasks/{quote(task_id)}")
        await page.click(f"{row('nightly')} .sc-last a")
        await page.wait_for_url(url(daemon, f"/tasks/{quote(task_id)}"))
        await expect(page.locator('#task-status[data-status="COMPLETED"]')).to_be_visible()
        await page.click("#task-schedule")  # a run's page leads back to its schedule
        await page.wait_for_url(url(daemon, "/schedules/nightly"))
        await expect(page.locator(f'#sc-runs tr[data-task="{task_id}"]')).to_be_visible()
        assert await page.evaluate("window.loadedOnce") is True
        assert await page.evaluate("window.hacked") is None


async def test_an_every_second_schedules_runs_arrive_without_a_reload(daemon: DashboardDaemon) -> None:
    await daemon.orchestrator.add_schedule(Schedule("beat", "echo", {"text": "b"}, every_seconds=1))
    async with browser_page() as page:
        await page.goto(url(daemon, "/schedules/beat"))  # a full load of the schedule's own address
        await expect(page.locator("#sc-timing")).to_have_text("every 1s")
        await page.evaluate("window.loadedOnce = true")
        await expect(page.locator('#sc-runs tr[data-status="COMPLETED"]').nth(2)).to_be_visible()  # a third one
        first = await page.locator("#sc-runs tbody tr >> nth=0").get_attribute("data-task")
        assert first is not None and first.startswith("beat@")
        assert await page.evaluate("window.loadedOnce") is True
