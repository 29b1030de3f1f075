"""The dashboard in a real browser: Debian's Chromium, driven by playwright, against a real registry, worker and
daemon. A task's row appears, runs and completes without a reload; a dead letter is requeued with its button.

Skipped only when /usr/bin/chromium or the playwright package is missing (`make browser` installs Chromium).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Gates
from tests.dashboard.conftest import dead_letter
from worker_abstraction.orchestrator.daemon.server import OrchestratorServer

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
# playwright never downloads a browser here: it drives the system's, with flags that work without a GPU,
# a sandbox (root in a container) or a network.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000

NO_PLAYWRIGHT = "the playwright package is not installed (pip install -e '.[dev]')"
NO_CHROMIUM = f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
pytestmark = [
    pytest.mark.skipif(async_playwright is None, reason=NO_PLAYWRIGHT),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
    pytest.mark.timeout(60),
]


async def test_a_task_appears_runs_and_completes_live_and_a_dead_letter_is_requeued_with_its_button(
    daemon: OrchestratorServer, gates: Gates, tmp_path: Path
) -> None:
    assert daemon.dashboard is not None and async_playwright is not None
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1100})
            await page.goto(daemon.dashboard.url)
            await page.wait_for_selector("#conn.pill-live", timeout=WAIT_MS)
            await page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads

            handle = await daemon.orchestrator.execute_task("wait_for", {"name": "go"})
            row = f"#task-{handle.task_id}"
            await page.wait_for_selector(f'{row}[data-status="RUNNING"]', timeout=WAIT_MS)
            gates.open("go")
            await page.wait_for_selector(f'{row}[data-status="COMPLETED"]', timeout=WAIT_MS)
            await page.wait_for_selector('#workers tbody tr:has-text("echo")', timeout=WAIT_MS)

            letter = await dead_letter(daemon, "broken on purpose")
            button = f"#dead-{letter} button.requeue"
            await page.wait_for_selector(button, timeout=WAIT_MS)  # pushed with the next overview
            await page.click(button)
            await page.wait_for_selector(f"#dead-{letter}", state="detached", timeout=WAIT_MS)
            notice = await page.wait_for_selector("#notice:has-text('requeued')", timeout=WAIT_MS)
            assert notice is not None
            requeued_as = (await notice.text_content() or "").rsplit(" ", 1)[-1]
            assert (await daemon.orchestrator.task(requeued_as)).capability == "explode"
            await page.wait_for_selector(f"#task-{requeued_as}", timeout=WAIT_MS)  # its row came live too

            await page.click(f"{row} td.status")  # the row opens the task's page (its links open theirs)
            await page.wait_for_selector('#detail-updates tbody tr:has-text("COMPLETED")', timeout=WAIT_MS)
            assert await page.evaluate("window.loadedOnce") is True

            screenshot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            print(f"dashboard screenshot: {screenshot}")
            kept = Path(__file__).parent / "output"  # ignored by git: the latest run's picture, for a look
            kept.mkdir(exist_ok=True)
            shutil.copy(screenshot, kept / "dashboard.png")
        finally:
            await browser.close()
