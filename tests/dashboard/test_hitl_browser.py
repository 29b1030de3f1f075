"""Human in the loop in a real browser (Debian's Chromium driven by playwright, as in test_dashboard_browser.py),
against a real registry, a worker whose handlers ask and stream, and a daemon whose `noop` tasks wait for
approval: a question answered through the task page's form (a refused answer first), a gated task approved
and another denied from their pages, the inbox, and streamed output appearing on a task's page as it comes.

Every wait is playwright's own (a selector or an expectation that retries until it holds or times out).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Gates
from tests.dashboard.conftest import GATED, DashboardDaemon
from tests.dashboard.test_dashboard_browser import CHROMIUM, NO_CHROMIUM, NO_PLAYWRIGHT
from tests.dashboard.test_dashboard_pages_browser import browser_page, url
from tests.dashboard.test_dashboard_workflows_browser import keep_screenshot
from tests.dashboard.test_hitl_routes import until_status
from worker_abstraction import TaskStatus

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the dev extra installs it
    expect = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(expect is None, reason=NO_PLAYWRIGHT),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
    pytest.mark.timeout(60),
]


async def test_a_question_is_found_in_the_inbox_and_answered_through_the_form(
    asking: DashboardDaemon, tmp_path: Path
) -> None:
    handle = await asking.orchestrator.execute_task("review", {"item": "v2"})
    await handle.input_requested(timeout_seconds=10)
    async with browser_page() as page:
        await page.goto(url(asking, "/"))
        await expect(page.locator(f'#tasks tr[data-task="{handle.task_id}"] .badge.s-INPUT_REQUIRED')).to_be_visible()
        await page.click("#nav-inbox")
        row = page.locator(f'#inbox tr[data-task="{handle.task_id}"]')
        await expect(row).to_contain_text("Ship v2?")
        await expect(row.locator(".badge.s-INPUT_REQUIRED")).to_have_text("INPUT_REQUIRED")
        await expect(page.locator("#nav-inbox")).to_have_class("here")
        await row.locator("td.prompt").click()
        await page.wait_for_url(url(asking, f"/tasks/{handle.task_id}"))
        await page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads

        await expect(page.locator('#task-status[data-status="INPUT_REQUIRED"]')).to_be_visible()
        await expect(page.locator("#question-prompt")).to_have_text("Ship v2?")
        await expect(page.locator("#question-schema")).to_contain_text('"boolean"')
        await expect(page.locator("#question-deadline")).to_contain_text("none")
        await page.fill("#answer-value", '{"approved": "yes"}')
        await page.click("#answer-send")
        await expect(page.locator("#answer-problems li")).to_have_count(1)
        await expect(page.locator("#answer-problems")).to_contain_text("boolean")
        await expect(page.locator("#answer-value")).to_have_value('{"approved": "yes"}')  # the form is kept
        await keep_screenshot(page, tmp_path, "hitl-refused-answer.png")
        assert handle.status is TaskStatus.INPUT_REQUIRED

        await page.fill("#answer-value", '{"approved": true, "note": "ship it"}')
        await page.click("#answer-send")
        await expect(page.locator('#task-status[data-status="COMPLETED"]')).to_be_visible()
        await expect(page.locator("#task-question")).to_have_count(0)
        answered = page.locator('#task-inputs tr[data-answered="1"]')
        await expect(answered).to_contain_text("Ship v2?")
        await expect(answered.locator("pre.answer")).to_have_text('{"approved":true,"note":"ship it"}')
        await expect(answered.locator(".answered-by")).to_contain_text("credentials are not checked")
        await expect(page.locator("#detail-updates")).to_contain_text("asked: Ship v2?")
        assert await page.evaluate("window.loadedOnce") is True
        assert (await handle.result())["answer"] == {"approved": True, "note": "ship it"}

        await page.click("#nav-inbox")
        await expect(page.locator("#inbox-empty")).to_be_visible()


async def test_a_gated_task_is_approved_and_another_denied_from_their_pages(
    asking: DashboardDaemon, tmp_path: Path
) -> None:
    approved = await asking.orchestrator.execute_task(GATED, {})
    denied = await asking.orchestrator.execute_task(GATED, {})
    await until_status(denied, TaskStatus.APPROVAL_REQUIRED)
    async with browser_page() as page:
        await page.goto(url(asking, "/inbox"))
        await expect(page.locator("#inbox .badge.s-APPROVAL_REQUIRED")).to_have_count(2)
        await page.goto(url(asking, f"/tasks/{approved.task_id}"))
        await expect(page.locator('#task-status[data-status="APPROVAL_REQUIRED"]')).to_be_visible()
        await expect(page.locator("#task-approval")).to_be_visible()
        await keep_screenshot(page, tmp_path, "hitl-approval.png")
        await page.fill("#decision-reason", "looks fine")
        await page.click("#task-approve")
        await expect(page.locator('#task-status[data-status="COMPLETED"]')).to_be_visible()
        await expect(page.locator('#task-decision[data-approved="1"]')).to_contain_text("approved by")
        await expect(page.locator("#task-decision")).to_contain_text("looks fine")
        await expect(page.locator("#task-approval")).to_have_count(0)

        await page.goto(url(asking, f"/tasks/{denied.task_id}"))
        await page.click("#task-deny")  # without a reason: refused on the page
        await expect(page.locator("#task-notice")).to_have_text("give a reason to deny")
        assert denied.status is TaskStatus.APPROVAL_REQUIRED
        await page.fill("#decision-reason", "not on a Friday")
        await page.click("#task-deny")
        await expect(page.locator('#task-status[data-status="CANCELED"]')).to_be_visible()
        await expect(page.locator('#task-decision[data-approved="0"]')).to_contain_text("not on a Friday")
        await expect(page.locator("#task-cancel")).to_be_hidden()
    assert await approved.result(timeout_seconds=10) == "ok"


async def test_streamed_chunks_appear_on_the_task_page_as_they_come(
    asking: DashboardDaemon, gates: Gates, tmp_path: Path
) -> None:
    params = {"gate": "page-drip", "first": ["alpha ", "beta "], "then": ["gamma ", "delta"]}
    handle = await asking.orchestrator.execute_task("drip", params)
    async with browser_page() as page:
        await page.goto(url(asking, f"/tasks/{handle.task_id}"))
        chunks = page.locator("#task-chunks")
        await expect(chunks).to_have_text("alpha beta ")
        await expect(chunks).to_have_attribute("data-count", "2")
        await expect(page.locator('#task-status[data-status="RUNNING"]')).to_be_visible()
        await page.evaluate("window.loadedOnce = true")
        gates.open("page-drip")
        await expect(chunks).to_have_text("alpha beta gamma delta")
        await expect(chunks).to_have_attribute("data-ended", "1")
        await expect(page.locator("#task-stream-count")).to_have_text("4 chunks, all of them")
        await expect(page.locator('#task-status[data-status="COMPLETED"]')).to_be_visible()
        await expect(page.locator("#detail-updates tbody tr")).to_have_count(3)  # PENDING, RUNNING, COMPLETED
        await keep_screenshot(page, tmp_path, "hitl-stream.png")
        assert await page.evaluate("window.loadedOnce") is True

        silent = await asking.orchestrator.execute_task("tokens", {"count": 0})
        await silent.result(timeout_seconds=10)
        await page.goto(url(asking, f"/tasks/{silent.task_id}"))  # a task that streamed nothing: no panel
        await expect(page.locator('#task-status[data-status="COMPLETED"]')).to_be_visible()
        await expect(page.locator("#task-stream")).to_be_hidden()
