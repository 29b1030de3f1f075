"""The dashboard's workflow pages in a real browser (Debian's Chromium driven by playwright, as in
test_dashboard_browser.py), against a real registry, a worker whose capabilities are workflow steps, and a
daemon with a SQLite store. A run's graph follows it live, without a reload, from the stream's events.

Skipped only when /usr/bin/chromium or the playwright package is missing (`make browser` installs Chromium).
Every wait is playwright's own (a selector or an expectation that retries until it holds or times out).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Gates
from tests.dashboard.conftest import DashboardDaemon
from tests.dashboard.test_dashboard_browser import CHROMIUM, NO_CHROMIUM, NO_PLAYWRIGHT
from tests.dashboard.test_dashboard_pages_browser import browser_page, url
from tests.dashboard.test_workflow_routes import broken, held, until_step

try:
    from playwright.async_api import Page, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    expect = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(expect is None, reason=NO_PLAYWRIGHT),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
    pytest.mark.timeout(60),
]


def node(step: str, status: str | None = None) -> str:
    """The graph's box of a step (in a given status)."""
    return f'#wf-graph .wf-node[data-step="{step}"]' + (f'[data-status="{status}"]' if status is not None else "")


async def left_of(page: Page, *steps: str) -> list[float]:
    """Where each step's box stands from the left of the graph."""
    found = []
    for step in steps:
        box = await page.locator(node(step)).bounding_box()
        assert box is not None
        found.append(box["x"])
    return found


async def keep_screenshot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    await page.screenshot(path=str(shot), full_page=True)
    kept = Path(__file__).parent / "output"  # ignored by git: the latest run's picture, for a look
    kept.mkdir(exist_ok=True)
    shutil.copy(shot, kept / name)


async def test_the_graph_shows_a_running_workflow_and_turns_completed_live_without_a_reload(
    flows: DashboardDaemon, gates: Gates, tmp_path: Path
) -> None:
    handle = await flows.orchestrator.run_workflow(held(), workflow_id="wf-live")
    await until_step(handle, "hold", "RUNNING")
    async with browser_page() as page:
        await page.goto(url(flows, "/workflows/wf-live"))  # a full load of the run's own address
        await expect(page.locator(node("hold", "RUNNING"))).to_be_visible()
        await expect(page.locator(node("sum", "WAITING"))).to_be_visible()
        await expect(page.locator(node("extract", "COMPLETED"))).to_be_visible()
        await expect(page.locator(node("double", "COMPLETED"))).to_contain_text("×3")  # a map: its element count
        await expect(page.locator('#wf-status[data-status="RUNNING"]')).to_be_visible()
        await expect(page.locator("#wf-graph .wf-edge")).to_have_count(4)
        await expect(page.locator("#conn.pill-live")).to_be_visible()
        extract, double, hold, total = await left_of(page, "extract", "double", "hold", "sum")
        assert extract < double < hold < total  # one layer each, left to right
        await page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads

        await page.click(node("hold"))
        await expect(page.locator('#wf-step-status[data-status="RUNNING"]')).to_be_visible()
        await expect(page.locator("#wf-step a.wf-task")).to_have_text(["wf-live.hold"])
        await keep_screenshot(page, tmp_path, "workflow-running.png")

        gates.open("release")
        await expect(page.locator(node("hold", "COMPLETED"))).to_be_visible()
        await expect(page.locator(node("sum", "COMPLETED"))).to_be_visible()
        await expect(page.locator('#wf-status[data-status="COMPLETED"]')).to_be_visible()
        await expect(page.locator('#wf-step-status[data-status="COMPLETED"]')).to_be_visible()  # the step shown
        await expect(page.locator("#wf-step-output")).to_have_text('"release"')
        await expect(page.locator("#wf-cancel")).to_be_hidden()
        assert await page.evaluate("window.loadedOnce") is True

        await page.click(node("double"))
        await expect(page.locator("#wf-step a.wf-task")).to_have_text([f"wf-live.double.{i}" for i in range(3)])
        await expect(page.locator("#wf-step-output")).to_have_text("[2,4,6]")
        await page.click("#wf-step a.wf-task >> nth=1")  # a map element's own task page
        await page.wait_for_url(url(flows, "/tasks/wf-live.double.1"))
        await expect(page.locator('#task-status[data-status="COMPLETED"]')).to_be_visible()
        await page.go_back()
        await expect(page.locator(node("double", "COMPLETED"))).to_be_visible()
        assert await page.evaluate("window.loadedOnce") is True


async def test_a_failed_step_shows_its_error_and_the_run_is_rerun_from_it(
    flows: DashboardDaemon, tmp_path: Path
) -> None:
    await (await flows.orchestrator.run_workflow(broken(), workflow_id="wf-failed")).wait(timeout_seconds=10)
    async with browser_page() as page:
        await page.goto(url(flows, "/workflows/wf-failed"))
        await expect(page.locator('#wf-status[data-status="FAILED"]')).to_be_visible()
        await expect(page.locator(node("bad", "FAILED"))).to_be_visible()
        await expect(page.locator(node("later", "SKIPPED"))).to_be_visible()
        await expect(page.locator(node("beside", "COMPLETED"))).to_be_visible()
        await expect(page.locator(node("alert", "COMPLETED"))).to_contain_text("on failure")
        await expect(page.locator("#wf-error")).to_contain_text("broken on purpose")
        await page.click("#wf-failed-step a")  # the failed step's name opens it
        await expect(page.locator("#wf-step-name")).to_have_text("bad")
        await expect(page.locator("#wf-step-error")).to_contain_text("ValueError: broken on purpose")
        await keep_screenshot(page, tmp_path, "workflow-failed.png")
        await page.evaluate("window.loadedOnce = true")
        await page.click("#wf-body a:has-text('its updates')")  # the run as a task, and back to its graph
        await expect(page.locator('#task-status[data-status="FAILED"]')).to_be_visible()
        await page.click("#task-workflow")
        await page.wait_for_url(url(flows, "/workflows/wf-failed"))
        await page.click(node("bad"))

        await page.uncheck("#wf-downstream")
        await page.click("#wf-rerun")
        rerun = page.locator("#wf-rerun-as")
        await expect(rerun).to_be_visible()
        again = await rerun.get_attribute("data-workflow-id")
        assert again and again != "wf-failed"
        await rerun.click()
        await page.wait_for_url(url(flows, f"/workflows/{again}"))
        await expect(page.locator('#wf-status[data-status="FAILED"]')).to_be_visible()  # it failed again, live
        await expect(page.locator("#wf-rerun-of")).to_have_text("wf-failed")
        await page.click(node("start"))
        await expect(page.locator("#wf-step-status")).to_contain_text("kept from the run this one reruns")
        assert await page.evaluate("window.loadedOnce") is True


async def test_the_list_is_in_the_navigation_and_shows_new_runs_live_and_hostile_names_as_text(
    flows: DashboardDaemon, gates: Gates
) -> None:
    await (await flows.orchestrator.run_workflow(broken(), workflow_id="wf-first")).wait(timeout_seconds=10)
    hostile = '<img src=x onerror="document.title=1">'
    async with browser_page() as page:
        await page.goto(url(flows))
        await page.click("#nav-workflows")
        await page.wait_for_url(url(flows, "/workflows"))
        await expect(page.locator('#workflows tr[data-workflow="wf-first"][data-status="FAILED"]')).to_be_visible()
        await page.evaluate("window.loadedOnce = true")

        flow = held("hostile")
        flow.name = hostile
        handle = await flows.orchestrator.run_workflow(flow, workflow_id=hostile)
        row = page.locator("#workflows tbody tr").first  # a new run comes to the top, live
        await expect(row).to_have_attribute("data-status", "RUNNING")
        await expect(row).to_contain_text(hostile)
        await page.select_option("#wf-status", "failed")
        await page.click("#wf-filters button[type=submit]")
        await expect(page.locator("#workflows tbody tr")).to_have_count(1)
        await page.click("#wf-clear")
        await expect(page.locator("#workflows tbody tr")).to_have_count(2)

        await row.click()
        await expect(page.locator("#wf-name")).to_have_text(hostile)
        await expect(page.locator("#wf-title")).to_contain_text(hostile)
        await until_step(handle, "hold", "RUNNING")
        await expect(page.locator(node("hold", "RUNNING"))).to_be_visible()
        assert await page.locator("img").count() == 0 and await page.title() != "1"
        await page.click("#wf-cancel")
        await expect(page.locator('#wf-status[data-status="CANCELED"]')).to_be_visible()
        await expect(page.locator(node("hold", "CANCELED"))).to_be_visible()
        assert await page.evaluate("window.loadedOnce") is True
