"""Issue 14 item 8: signing off never discards the steward's unsaved edits.

The sign-off button submits the review form. A sign-off POST that carries edited columns either
saves them with the sign-off (one transaction) or is refused with the edits still in the form and
nothing written. Before, the sign-off had its own form: the edits were silently dropped and the
untouched classification was signed off."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import csv_upload, small_flchain_csv
from generation.models import SourceDataset
from generation.services import dataset_register
from generation.tests.test_declarations import review_post


@pytest.fixture
def registered(sam: Any) -> SourceDataset:
    return dataset_register(
        actor=sam, name="flchain", uploaded_file=csv_upload(small_flchain_csv(237)), epsilon_cap="1"
    )


def signoff_url(dataset: SourceDataset) -> str:
    return f"/datasets/{dataset.pk}/signoff/"


def other_classification(dataset: SourceDataset, name: str) -> str:
    current = dataset.columns.get(name=name).classification
    return "sensitive" if current != "sensitive" else "quasi_identifier"


def test_signing_off_with_unsaved_edits_saves_them_in_the_signed_off_version(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    client.force_login(sam)
    new = other_classification(registered, "chapter")
    posted = review_post(
        registered,
        chapter={"classification": new},
        kappa={"lower": "0", "upper": "100", "unit": "mg/L"},
    )

    response = client.post(signoff_url(registered), posted)

    assert response.status_code == 302
    registered.refresh_from_db()
    assert registered.status == "ready"
    assert registered.classification_version == 1
    assert registered.columns.get(name="chapter").classification == new
    signed = {c["name"]: c for c in registered.classification_versions.get(number=1).columns}
    assert signed["chapter"]["classification"] == new
    assert (signed["kappa"]["lower"], signed["kappa"]["upper"], signed["kappa"]["source"]) == (
        0.0,
        100.0,
        "steward",
    )
    page = client.get(response["Location"]).content.decode()
    assert "Saved your changes and signed off classification v1" in page


def test_a_refused_signoff_saves_nothing_and_keeps_the_edits_in_the_form(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    """A lower bound without an upper one: the sign-off refuses (bounds incomplete), so the
    classification edited in the same form must not be saved either, and must be shown again."""
    client.force_login(sam)
    before = registered.columns.get(name="chapter").classification
    new = other_classification(registered, "chapter")
    posted = review_post(registered, chapter={"classification": new}, kappa={"lower": "7"})

    response = client.post(signoff_url(registered), posted)

    assert response.status_code == 400
    page = response.content.decode()
    assert "Not signed off, and nothing saved: your edits are kept in the form below" in page
    assert "kappa" in page
    # The edits are in the form as posted.
    index = list(registered.columns.order_by("position").values_list("name", flat=True)).index("kappa")
    assert re.search(rf'name="c{index}-lower"[^>]*value="7"', page)
    chapter = list(registered.columns.order_by("position").values_list("name", flat=True)).index("chapter")
    assert re.search(rf'<option value="{new}" selected>', _select(page, f"c{chapter}-classification"))
    registered.refresh_from_db()
    assert registered.status == "pending_review"
    assert registered.classification_version == 0
    assert registered.columns.get(name="chapter").classification == before
    assert registered.columns.get(name="kappa").declared["source"] == "profile_suggestion"


def test_an_invalid_edit_refuses_the_signoff_with_the_form_shown_again(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    client.force_login(sam)
    posted = review_post(registered, kappa={"decimals": "-3"})

    response = client.post(signoff_url(registered), posted)

    assert response.status_code == 400
    assert "Not signed off" in response.content.decode()
    registered.refresh_from_db()
    assert (registered.status, registered.classification_version) == ("pending_review", 0)


def test_who_is_asking_is_checked_before_the_edits(
    client: Any, olivia: Any, registered: SourceDataset
) -> None:
    client.force_login(olivia)
    posted = review_post(registered, chapter={"classification": other_classification(registered, "chapter")})

    response = client.post(signoff_url(registered), posted)

    assert response.status_code == 403
    registered.refresh_from_db()
    assert registered.classification_version == 0


def test_the_signoff_button_submits_the_review_form(client: Any, sam: Any, registered: SourceDataset) -> None:
    client.force_login(sam)

    page = client.get(f"/datasets/{registered.pk}/review/").content.decode()

    forms = re.findall(r"<form\b.*?</form>", page, flags=re.S)
    review = next(f for f in forms if 'name="c0-classification"' in f)
    assert f'formaction="{signoff_url(registered)}"' in review
    # No separate sign-off form that would post without the edits.
    assert not any(re.search(rf'\saction="{signoff_url(registered)}"', f) for f in forms)


def _select(page: str, name: str) -> str:
    match = re.search(rf'<select name="{name}".*?</select>', page, flags=re.S)
    assert match, name
    return match.group(0)
