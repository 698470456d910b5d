"""The report in headless Chromium: every chart renders under the CSP, the export renders offline.

Runs Debian's chromium through Playwright (never `playwright install`). Screenshots go to
test-artifacts/ for people to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.models import Release
from conftest import IN_CI, PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # fixtures touch the ORM outside page calls

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Any]:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if IN_CI:
            pytest.fail("Chromium is required under CI=true (apt-get install -y chromium).")
        pytest.skip("Debian's chromium is not installed; .ci/run installs it under CI.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def signed_in(browser: Any, base: str, username: str, errors: list[str]) -> Any:
    page = browser.new_context(accept_downloads=True).new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.set_default_timeout(30_000)
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def test_officer_sees_every_chart_render_and_the_export_renders_offline(
    live_server: Any, browser: Any, olivia: Any, alice: Any, release: Release, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = signed_in(browser, live_server.url, "olivia", errors)
    page.goto(f"{live_server.url}/catalog/{release.pk}/")
    charts = page.locator(".chart")
    expected = charts.count()
    page.wait_for_function(
        "n => document.querySelectorAll('.chart[data-rendered=\"1\"] .main-svg').length >= n", arg=expected
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "release-report-officer.png"), full_page=True)
    assert expected >= 12  # risks, TSTR, shapes, heatmap, distances and 7 column overlays
    assert errors == []  # no CSP violation, no script error

    with page.expect_download() as download:
        page.get_by_role("link", name="Download report (HTML)").click()
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    assert exported.suffix == ".html"
    offline = browser.new_context(offline=True).new_page()  # self-contained: nothing to fetch
    offline.goto(exported.as_uri())
    offline.wait_for_function(
        "n => document.querySelectorAll('.chart[data-rendered=\"1\"] .main-svg').length >= n", arg=expected
    )
    offline.screenshot(path=str(ARTIFACTS / "release-report-export.png"), full_page=True)

    requester = signed_in(browser, live_server.url, "alice", errors)
    requester.goto(f"{live_server.url}/catalog/{release.pk}/")
    requester.screenshot(path=str(ARTIFACTS / "release-report-requester.png"), full_page=True)
    assert requester.locator(".chart").count() == 0
    assert requester.get_by_test_id("gate-verdict").inner_text() == "passed"
