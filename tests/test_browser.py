"""The golden path in headless Chromium: file a request in the form, approve it, download it.

Runs Debian's chromium through Playwright (never `playwright install`). Screenshots of each
step are written to test-artifacts/ for people to look at.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run inside one
# unless told it is safe. The test only touches the ORM through fixtures, outside page calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def _sign_in(browser: Any, base_url: str, username: str) -> Any:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    # Any CSP violation or script error on our pages fails the test.
    page.on("console", lambda m: m.type == "error" and _console_errors.append(f"{username}: {m.text}"))
    page.set_default_timeout(20_000)
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
    return page


_console_errors: list[str] = []


def _shot(page: Any, name: str) -> None:
    # Only after an action has finished: a full-page capture resizes the viewport, and a click
    # issued right after one can miss its target in headless Chromium.
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_scientist_files_officer_approves_scientist_downloads(
    live_server: Any, celery_worker_process: Any, browser: Any, alice: Any, olivia: Any, dataset: Any
) -> None:
    base = live_server.url
    _console_errors.clear()
    scientist = _sign_in(browser, base, "alice")
    scientist.get_by_role("link", name="New generation request").first.click()
    scientist.get_by_label("Dataset").select_option(str(dataset.pk))
    scientist.get_by_label("age (quasi-identifier)").check()  # appears via htmx
    for column in ("kappa", "lambda", "futime"):
        scientist.get_by_label(f"{column} (other)").check()
    scientist.get_by_label("Title").fill("Light-chain survival prototype")
    scientist.get_by_label("Purpose").fill("Prototype a survival model on free light chains")
    scientist.get_by_label("Intended use").fill("Feature engineering in a team notebook")
    scientist.get_by_label("Audience").select_option("internal")
    scientist.get_by_label("Synthesizer", exact=True).select_option("gaussian_copula")
    scientist.get_by_label("Rows").fill("400")
    scientist.get_by_role("button", name="Submit for review").click()
    _shot(scientist, "1-request-submitted")
    status = scientist.get_by_test_id("request-status")
    assert status.inner_text() == "In review"
    request_url = scientist.url

    officer = _sign_in(browser, base, "olivia")
    officer.get_by_role("link", name="Review queue").click()
    officer.get_by_role("link", name="Light-chain survival prototype").click()
    assert officer.get_by_test_id("tier").inner_text() in {"low", "medium", "high"}
    officer.get_by_label("Approve").check()
    officer.get_by_label("Comment").fill("Minimum necessary columns; internal use.")
    officer.get_by_role("button", name="Record decision").click()
    assert "Decision recorded." in officer.content()
    _shot(officer, "2-officer-approved")

    scientist.goto(request_url)
    # The job panel polls with htmx; no reload is needed for the release link to appear.
    scientist.get_by_role("link", name="Open the published release").click(timeout=120_000)
    _shot(scientist, "3-release")
    with scientist.expect_download() as download_info:
        scientist.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert len(rows) == 400
    assert set(rows[0]) == {"age", "kappa", "lambda", "futime"}
    assert _console_errors == []
