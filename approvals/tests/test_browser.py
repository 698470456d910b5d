"""In headless Chromium, under the portal's strict CSP: the live tier preview follows the form
through htmx, and the evidence page draws its plotly charts from the locally served bundle.

Any console error (a CSP violation included) fails the test. Runs Debian's chromium through
Playwright, like tests/test_browser.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from conftest import IN_CI, PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@pytest.fixture
def page_for(live_server: Any) -> Iterator[Any]:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if IN_CI:
            pytest.fail("Chromium is required under CI=true (apt-get install -y chromium).")
        pytest.skip("Debian's chromium is not installed.")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=ARGS)

        def open_as(username: str) -> Any:
            page = browser.new_context().new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(f"{username}: {m.text}"))
            page.on("pageerror", lambda e: errors.append(f"{username}: {e}"))
            page.set_default_timeout(20_000)
            page.goto(f"{live_server.url}/accounts/login/")
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{live_server.url}/")
            return page

        open_as.errors = errors  # type: ignore[attr-defined]
        try:
            yield open_as
        finally:
            browser.close()


def test_the_live_preview_follows_the_form(page_for: Any, live_server: Any, alice: Any, dataset: Any) -> None:
    from playwright.sync_api import expect

    page = page_for("alice")
    page.goto(f"{live_server.url}/requests/new/")
    page.get_by_label("Dataset").select_option(str(dataset.pk))
    page.get_by_label("age (quasi-identifier)").check()  # columns arrive through htmx
    page.get_by_label("kappa (other)").check()
    tier = page.get_by_test_id("preview-tier")
    page.get_by_label("Audience").select_option("external")
    expect(tier).to_have_text("prohibited")  # polls the DOM (no eval, which the CSP forbids)
    assert "To lower the tier" in page.content()
    page.get_by_label("Audience").select_option("internal")
    expect(tier).to_have_text("medium")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "approvals-preview.png"), full_page=True)
    assert page_for.errors == []


def test_the_evidence_charts_render_under_the_csp(
    page_for: Any, live_server: Any, submitted_request: Any, olivia: Any
) -> None:
    from approvals.models import GenerationRequest
    from approvals.services import request_decide

    GenerationRequest.objects.filter(pk=submitted_request.pk).update(
        first_submitted_at=timezone.now() - timedelta(hours=3)
    )
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    page = page_for("olivia")
    page.goto(f"{live_server.url}/requests/evidence/")
    page.wait_for_selector("#chart-cycle-per-tier .main-svg")
    page.wait_for_selector("#chart-cycle-per-request .main-svg")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "approvals-evidence.png"), full_page=True)
    assert page_for.errors == []


def test_a_dp_request_on_profile_suggestions_is_refused_in_the_browser(
    page_for: Any, live_server: Any, alice: Any, dataset: Any
) -> None:
    from playwright.sync_api import expect

    from approvals.models import GenerationRequest
    from approvals.tests.helpers import profile_suggestions_only

    profile_suggestions_only(dataset)
    page = page_for("alice")
    page.goto(f"{live_server.url}/requests/new/")
    page.get_by_label("Dataset").select_option(str(dataset.pk))
    page.get_by_label("kappa (other)").check()  # columns arrive through htmx
    page.get_by_label("Title").fill("DP prototype")
    page.get_by_label("Purpose", exact=True).fill("Model")
    page.get_by_label("Intended use").fill("Notebook")
    page.get_by_label("Epsilon", exact=True).fill("0.5")
    page.get_by_label("Synthesizer", exact=True).select_option("dp_copula")
    expect(page.get_by_test_id("preview-dp-domain")).to_contain_text("`kappa`")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_role("alert").first).to_contain_text("only a suggestion read from the data")
    assert not GenerationRequest.objects.exists()
    assert page_for.errors == []
