"""Issue 14's walk in headless Chromium: a scientist of another team finds a release's card and
asks to use it, a privacy officer grants it, the scientist downloads, the officer withdraws the
release after an incident, the download answers 410 with the reason, and the scientist finds a
notification in the inbox. Screenshots go to test-artifacts/access-*.png."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from tests.test_browser import _console_errors, _shot, _sign_in, browser

__all__ = ["browser"]  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REASON = "Linkage risk found in incident INC-42"


@pytest.fixture
def cardiology_release(alice: Any, olivia: Any, dataset: Any) -> Any:
    """alice's (Cardiology) published release, made in-process: the walk is about custody."""
    from approvals.services import RequestInput, request_create, request_decide, request_submit
    from catalog.models import Release
    from catalog.pipeline import pipeline_run
    from conftest import SAFE_COLUMNS
    from generation.models import SynthesisJob

    data = RequestInput(
        dataset_id=dataset.pk,
        title="Cardiology light-chain cohort",
        purpose="Prototype a mortality model",
        intended_use="Feature engineering in a notebook",
        audience="internal",
        columns=SAFE_COLUMNS,
        synthesizer="gaussian_copula",
        rows=300,
        epsilon=None,
    )
    submitted = request_submit(actor=alice, request_id=request_create(actor=alice, data=data).pk)
    request_decide(actor=olivia, request_id=submitted.pk, decision="approve")
    submitted.refresh_from_db()
    SynthesisJob.objects.filter(pk=submitted.job_id).update(seed=20240601)
    assert pipeline_run(job_id=submitted.job_id) == "published"
    return Release.objects.get(request=submitted)


def test_another_team_asks_is_granted_downloads_and_is_told_of_the_withdrawal(
    live_server: Any, browser: Any, charlie: Any, olivia: Any, cardiology_release: Any
) -> None:
    base = live_server.url
    _console_errors.clear()
    release_url = f"{base}/catalog/{cardiology_release.pk}/"

    # charlie (Oncology) cannot open the release, but finds its card and asks.
    scientist = _sign_in(browser, base, "charlie")
    assert scientist.goto(release_url).status == 404
    scientist.goto(f"{base}/catalog/")
    cards = scientist.get_by_test_id("discoverable-releases")
    cards.get_by_role("link", name="Request access").click()
    scientist.get_by_label("What will you use it for?").fill("External validation on oncology patients")
    until = (timezone.now() + timedelta(days=30)).date().isoformat()
    scientist.get_by_label("Access needed until").fill(until)
    scientist.get_by_role("button", name="Request access").click()
    assert "Your request is with the people who decide access to this release." in scientist.content()
    _shot(scientist, "access-1-requested")

    # The officer grants it from the access-request queue.
    officer = _sign_in(browser, base, "olivia")
    officer.goto(f"{base}/catalog/access-requests/")
    row = officer.get_by_test_id("access-request").filter(has_text="charlie")
    row.get_by_label("Comment").fill("Validation use only; do not share.")
    row.get_by_role("button", name="Grant").click()
    assert "Decision recorded." in officer.content()
    _shot(officer, "access-2-granted")

    # charlie now opens the release and downloads it.
    scientist.goto(release_url)
    with scientist.expect_download() as download_info:
        scientist.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert len(rows) == cardiology_release.rows
    _shot(scientist, "access-3-downloaded")

    # An incident: the officer withdraws the release with a reason.
    officer.goto(release_url)
    officer.get_by_role("link", name="Withdraw…").click()
    officer.get_by_label("Reason (shown on the card; do not include data values)").fill(REASON)
    officer.get_by_role("button", name="Withdraw release").click()
    assert officer.get_by_test_id("release-state").inner_text() == "Withdrawn"
    assert officer.get_by_test_id("release-downloaders").filter(has_text="charlie").count() == 1
    _shot(officer, "access-4-withdrawn")

    # The download now answers 410 with the reason; the page offers no download.
    gone = scientist.goto(f"{release_url}download/")
    assert gone is not None and gone.status == 410
    assert REASON in scientist.content()
    scientist.goto(release_url)
    assert scientist.get_by_role("link", name="Download CSV").count() == 0

    # charlie, who downloaded it, is told, and the inbox link counts it.
    scientist.get_by_test_id("nav-inbox").click()
    assert "withdrawn" in scientist.content().lower()
    assert cardiology_release.title in scientist.content()
    _shot(scientist, "access-5-inbox")
    # The 404 and 410 the walk asked for are logged by the browser; nothing else may be.
    expected = {
        f"charlie: Failed to load resource: the server responded with a status of {s}"
        for s in (
            "404 (Not Found)",
            "410 (Gone)",
        )
    }
    assert [error for error in _console_errors if error not in expected] == []
