"""The dashboard's task and worker pages, its filters and its operator buttons in a real browser (Debian's
Chromium driven by playwright, as in test_dashboard_browser.py), against a real registry, worker and daemon.

Every wait is playwright's own (a selector or an expectation that retries until it holds or times out).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.conftest import Gates
from tests.dashboard.conftest import OPERATOR, DashboardDaemon, finished
from tests.dashboard.test_dashboard_browser import ARGS, CHROMIUM, NO_CHROMIUM, NO_PLAYWRIGHT, WAIT_MS
from worker_abstraction import RegistryServer
from worker_abstraction.auth import Authenticator
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(async_playwright is None, reason=NO_PLAYWRIGHT),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
    pytest.mark.timeout(60),
]


@asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    """A fresh page in a headless Chromium, closed afterwards; page errors fail the test."""
    errors: list[Any] = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1100})
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page.on("pageerror", lambda error: errors.append(error))
            yield page
        finally:
            await browser.close()
    assert errors == [], errors


def url(daemon: OrchestratorServer, path: str = "") -> str:
    assert daemon.dashboard is not None
    return daemon.dashboard.url.rstrip("/") + "/" + path.lstrip("/")


async def test_a_failed_tasks_address_opens_it_with_its_traceback_and_retry_links_to_the_new_task(
    stored: OrchestratorServer,
) -> None:
    failed = await finished(stored, "explode", message="broken on purpose")
    await finished(stored, "echo", text="the failed one is now read from the store")
    async with browser_page() as page:
        await page.goto(url(stored, f"/tasks/{failed}"))  # a full load of the task's own address
        await expect(page.locator('#task-status[data-status="FAILED"]')).to_be_visible()
        await expect(page.locator("#task-traceback")).to_contain_text("raise ValueError(message)")
        await expect(page.locator("#task-traceback")).to_contain_text("ValueError: broken on purpose")
        await expect(page.locator("#detail-attempts tbody tr")).to_have_count(1)
        await expect(page.locator('#detail-updates tbody tr:has-text("FAILED")')).to_have_count(1)
        await expect(page.locator("#task-cancel")).to_be_hidden()
        await page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads

        await page.click("#task-retry")
        retried = page.locator("#retried-as")
        await expect(retried).to_be_visible()
        new_id = await retried.get_attribute("data-task-id")
        assert new_id and new_id != failed
        await retried.click()
        await page.wait_for_url(url(stored, f"/tasks/{new_id}"))
        await expect(page.locator("#task-title")).to_contain_text(new_id)
        await expect(page.locator('#task-status[data-status="FAILED"]')).to_be_visible()  # it failed again, live
        assert (await stored.orchestrator.task(new_id)).params == {"message": "broken on purpose"}

        await page.go_back()
        await expect(page.locator("#task-title")).to_contain_text(failed)
        assert await page.evaluate("window.loadedOnce") is True


async def test_the_cancel_button_cancels_a_running_task_and_the_page_follows_it(
    daemon: OrchestratorServer, gates: Gates
) -> None:
    handle = await daemon.orchestrator.execute_task("wait_for", {"name": "never-opened"})
    async with browser_page() as page:
        await page.goto(url(daemon, f"/tasks/{handle.task_id}"))
        await expect(page.locator('#task-status[data-status="RUNNING"]')).to_be_visible()
        await expect(page.locator("#task-retry")).to_be_hidden()
        await page.click("#task-cancel")
        await expect(page.locator('#task-status[data-status="CANCELED"]')).to_be_visible()
        await expect(page.locator("#task-cancel")).to_be_hidden()
        await expect(page.locator("#task-retry")).to_be_visible()  # a canceled task may be run again
        assert "canceled from the dashboard" in (await daemon.orchestrator.task(handle.task_id)).cancel_reason


async def test_filters_search_the_whole_store_and_the_address_keeps_them(stored: OrchestratorServer) -> None:
    echoed = [await finished(stored, "echo", text=str(n)) for n in range(3)]
    failed = await finished(stored, "explode", message="kaput")
    [worker] = await stored.orchestrator.workers()
    async with browser_page() as page:
        await page.goto(url(stored))
        await expect(page.locator("#conn.pill-live")).to_be_visible()
        await page.select_option("#f-status", "completed")
        await page.fill("#f-worker", worker.worker_id)
        await page.click("#filters button[type=submit]")
        for task_id in echoed:
            await expect(page.locator(f"#task-{task_id}")).to_be_visible()
            # Ids made together share their time prefix: a row shows the random tail (all of it in the title).
            link = page.locator(f"#task-{task_id} a[title='{task_id}']")
            await expect(link).to_have_text(f"{task_id[:4]}…{task_id[-8:]}")
        await expect(page.locator("#tasks tbody tr")).to_have_count(3)
        assert "status=completed" in page.url and f"worker={worker.worker_id}" in page.url

        await page.reload()  # the address alone brings the same filtered list back
        await expect(page.locator("#tasks tbody tr")).to_have_count(3)
        await expect(page.locator("#f-status")).to_have_value("completed")

        await page.click("#f-clear")
        await page.fill("#f-q", failed[:20])
        await page.select_option("#f-range", "3600")
        await page.click("#filters button[type=submit]")
        await expect(page.locator("#tasks tbody tr")).to_have_count(1)
        await expect(page.locator(f'#task-{failed}[data-status="FAILED"]')).to_be_visible()

        await page.fill("#f-q", "")
        await page.select_option("#f-range", "")
        await page.fill("#f-capability", "no-such-capability")
        await page.click("#filters button[type=submit]")
        await expect(page.locator("#tasks-empty")).to_have_text("no task matches")

        await page.goto(url(stored, "/?since=yesterday"))
        await expect(page.locator("#query-error")).to_contain_text("since")

        await page.click("#f-clear")  # back to the live list
        await expect(page.locator("#tasks-scope")).to_have_text("latest first, live")
        await expect(page.locator(f"#task-{failed}")).to_be_visible()


async def test_a_workers_address_opens_its_page_and_every_row_names_it_with_its_id(
    daemon: OrchestratorServer,
) -> None:
    before = await finished(daemon, "echo", text="before the page opened")
    [worker] = await daemon.orchestrator.workers()
    label = f"ToolWorker {worker.worker_id[:4]}…{worker.worker_id[-8:]}"
    async with browser_page() as page:
        await page.goto(url(daemon))
        cell = page.locator(f"#task-{before} .worker-cell")
        await expect(cell).to_have_text(label)  # from the first snapshot: the same as every later row
        after = await finished(daemon, "echo", text="after")
        await expect(page.locator(f"#task-{after} .worker-cell")).to_have_text(label)
        await expect(page.locator(f'#workers tr[data-worker="{worker.worker_id}"] a.worker')).to_have_text(label)

        await page.goto(url(daemon, f"/workers/{worker.worker_id}"))  # a full load of the worker's address
        await expect(page.locator("#worker-title")).to_contain_text("ToolWorker")
        await expect(page.locator("#worker-state")).to_contain_text("ACTIVE")
        await expect(page.locator("#worker-circuit")).to_contain_text("closed")
        await expect(page.locator("#worker-slots")).to_contain_text(f"of {worker.max_concurrent_tasks}")
        await expect(page.locator("#worker-capabilities")).to_contain_text("wait_for@1.0.0")
        await expect(page.locator(f"#worker-task-{after}")).to_be_visible()
        await expect(page.locator(f"#worker-task-{before}")).to_be_visible()

        await page.click(f"#worker-task-{before} td.status")  # a row opens its task
        await page.wait_for_url(url(daemon, f"/tasks/{before}"))
        await page.click("#task-worker a.worker")  # and the task's worker links back
        await page.wait_for_url(url(daemon, f"/workers/{worker.worker_id}"))


async def test_sign_out_and_the_operator_buttons_show_only_where_they_apply(
    daemon: OrchestratorServer, registry: RegistryServer, authenticator: Authenticator
) -> None:
    failed = await finished(daemon, "explode", message="x")
    async with browser_page() as page:  # credentials off: nobody to sign out, and anyone reaching it may act
        await page.goto(url(daemon, f"/tasks/{failed}"))
        await expect(page.locator("#task-retry")).to_be_visible()
        await expect(page.locator("#logout")).to_be_hidden()

    async with DashboardDaemon(registry.address, auth=authenticator) as secured:
        await secured.orchestrator.wait_for_workers("explode", timeout_seconds=5)
        lettered = await finished(secured, "explode", message="y")
        async with browser_page() as page:
            await page.goto(url(secured, f"/tasks/{lettered}"))
            await expect(page.locator("input[name=token]")).to_be_visible()  # the sign-in form, first
            await page.fill("input[name=token]", OPERATOR)
            await page.click("button[type=submit]")
            await page.wait_for_url(url(secured, f"/tasks/{lettered}"))  # back where the link pointed
            await expect(page.locator("#task-retry")).to_be_visible()
            await expect(page.locator("#logout")).to_be_visible()
            await expect(page.locator("#visitor")).to_have_text("operator/root")
            await page.click("#logout button")
            await expect(page.locator("input[name=token]")).to_be_visible()
