"""The release data card (issue 14, item 1): built from measured facts, filtered like the report,
served as JSON and as Croissant 1.0 + RAI (validated by mlcroissant), rendered by _card.html."""

from __future__ import annotations

import copy
import json
from typing import Any

import mlcroissant as mlc
import pytest
from django.template.loader import render_to_string
from rest_framework.test import APIRequestFactory, force_authenticate

from approvals.models import Decision, GenerationRequest
from catalog.api.cards import ReleaseCardApi
from catalog.cards import (
    CROISSANT_1_0,
    CROISSANT_RAI_1_0,
    WITHHELD_DP,
    WITHHELD_VALUES,
    card_limitations,
    card_to_croissant,
    ons_level,
    release_card,
)
from catalog.models import Release
from generation.models import SourceDataset, SynthesisJob

SECTIONS = {
    "title", "purpose", "intended_use", "uses", "audience", "privacy", "gate", "limitations",
    "data_dictionary", "provenance", "expiry", "owner", "ons_level", "five_safes",
}  # fmt: skip
DP_FACTS = {"dp": True, "unit": "record", "epsilon": "0.5", "delta": "0", "flavour": "pure epsilon-DP"}


def _call(user: Any, release: Release, **query: str) -> Any:
    """The view through APIRequestFactory: the route is not registered yet."""
    http = APIRequestFactory().get(f"/api/v1/releases/{release.pk}/card/", query)
    force_authenticate(http, user=user)
    response = ReleaseCardApi.as_view()(http, release_id=str(release.pk))
    response.render()
    return response


def _as_dp(release: Release) -> Release:
    """The real published release recorded as a DP release (epsilon 0.5), as test_privacy does."""
    receipt = {**release.receipt, "privacy_facts": DP_FACTS}
    SynthesisJob.objects.filter(pk=release.job_id).update(epsilon_micro=500_000, receipt=receipt)
    GenerationRequest.objects.filter(pk=release.request_id).update(
        synthesizer="dp_copula", epsilon_micro=500_000
    )
    SourceDataset.objects.filter(pk=release.dataset_id).update(epsilon_spent_micro=500_000)
    Release.objects.filter(pk=release.pk).update(
        is_dp=True, epsilon_micro=500_000, synthesizer="dp_copula", privacy={}, receipt=receipt
    )
    return Release.objects.get(pk=release.pk)


def test_the_card_has_every_section_with_measured_values(release: Release, alice: Any, olivia: Any) -> None:
    Decision.objects.filter(request=release.request).update(conditions="Keep the file inside the trust.")
    card = release_card(release=release, user=olivia)
    assert SECTIONS <= set(card)
    json.dumps(card)  # the API returns it as is
    # Every gate check, with value, threshold, interval and status; not_run ones with their reason.
    stored = {c["name"]: c for c in release.gate["checks"]}
    checks = {c["name"]: c for c in card["gate"]["checks"]}
    assert set(checks) == set(stored)
    not_run = [c for c in checks.values() if c["status"] == "not_run"]
    assert not_run and all(c["reason"] for c in not_run)
    tstr = checks["tstr_auc_ratio"]
    assert (
        tstr["value"] == stored["tstr_auc_ratio"]["value"]
        and tstr["interval"] == stored["tstr_auc_ratio"]["ci"]
    )
    assert tstr["threshold"] == stored["tstr_auc_ratio"]["threshold"]
    # The dictionary lists exactly the released columns, with the steward's declarations.
    assert [row["column"] for row in card["data_dictionary"]] == release.columns
    age = next(row for row in card["data_dictionary"] if row["column"] == "age")
    assert (age["kind"], age["unit"], age["classification"]) == ("numeric", "years", "quasi_identifier")
    assert age["domain"] == "18 to 110 (whole numbers)"
    # Non-DP: said plainly.
    assert card["privacy"]["dp"] is False and card["privacy"]["headline"].startswith("not DP")
    assert any("not differentially private" in line for line in card["privacy"]["not_covered"])
    # Uses, audience, provenance, expiry, owner: from the request, its tier and its approvers.
    assert release.request.purpose in card["uses"]["permitted"][0]
    assert any(
        "Sharing outside the approved audience (team Cardiology)" in p for p in card["uses"]["prohibited"]
    )
    assert card["uses"]["conditions"] == ["Keep the file inside the trust."]
    assert "Subject to the approvers' condition: Keep the file inside the trust." in card["uses"]["permitted"]
    assert card["provenance"]["approvers"][0]["conditions"] == "Keep the file inside the trust."
    assert "tier_reasons" not in card["uses"]  # facts measured on the source
    assert card["audience"]["access_level"] == "internal"
    assert [a["name"] for a in card["provenance"]["approvers"]] == ["olivia"]
    assert card["provenance"]["source"] == "flchain" and card["provenance"]["source_version"] == 1
    assert card["provenance"]["policy_version"] == release.request.policy_version
    assert card["provenance"]["seed"] == release.receipt["seed"]
    assert release.expires_at is not None and card["expiry"]["expires_at"] == release.expires_at.isoformat()
    assert card["owner"] == {"team": "Cardiology", "requester": "alice"}
    # Measured: every utility check through tstr passed on this release, so it is multivariate detailed.
    assert card["ons_level"]["level"] == "multivariate_detailed"
    assert set(card["five_safes"]) == {"projects", "people", "settings", "data", "outputs"}
    assert "not DP" in card["five_safes"]["data"]

    # The requester gets statuses, thresholds and reasons, and the card says why values are missing.
    mine = release_card(release=release, user=alice)
    assert all(c["value"] is None and c["interval"] is None for c in mine["gate"]["checks"])
    assert mine["gate"]["values_note"] == WITHHELD_VALUES
    assert mine["limitations"]["withheld"] and mine["ons_level"] == card["ons_level"]

    html = render_to_string("catalog/_card.html", {"card": mine})
    assert "Synthetic-augmented multivariate detailed" in html and "withheld" in html
    assert "Safe outputs" in html and "<td><code>futime</code></td>" in html


def test_a_dp_card_states_epsilon_delta_unit_and_what_is_not_covered(
    release: Release, alice: Any, olivia: Any
) -> None:
    dp = _as_dp(release)
    card = release_card(release=dp, user=alice)
    privacy = card["privacy"]
    assert privacy["dp"] is True
    assert (privacy["epsilon"], privacy["delta"], privacy["unit"]) == (0.5, 0, "record")
    assert "epsilon 0.5" in privacy["headline"] and "per record" in privacy["headline"]
    assert any("validation report" in line for line in privacy["not_covered"])
    # Values computed on the real rows outside the budget: custodians only, here and in limitations.
    assert all(c["value"] is None for c in card["gate"]["checks"])
    assert card["gate"]["values_note"] == WITHHELD_DP
    assert card["limitations"]["items"] == [] and card["limitations"]["withheld"]
    assert "rows_training" not in json.dumps(card) and "column_shapes" not in json.dumps(card)
    custodian = release_card(release=dp, user=olivia)
    assert any(c["value"] is not None for c in custodian["gate"]["checks"])


def test_the_limitation_rules_fire_on_planted_metrics(release: Release) -> None:
    checks = [{"name": "column_shape_similarity", "threshold": 0.75}]
    metrics = copy.deepcopy(release.metrics)
    assert card_limitations(release=release, metrics=metrics, checks=checks)["items"] == []  # measured: none

    metrics["column_shapes"]["kappa"] = 0.61
    metrics["outcome"]["difference"] = -0.12
    metrics["missingness"]["columns"]["creatinine"] = {"real": 0.04, "synthetic": 0.0}
    metrics["category_coverage"]["columns"]["sex"]["covered"] = 1
    metrics["rows_training"] = 200
    Release.objects.filter(pk=release.pk).update(
        receipt={**release.receipt, "conformed_to_declared": {"death": {"undeclared_category": 7}}}
    )
    release.refresh_from_db()
    items = card_limitations(release=release, metrics=metrics, checks=checks)["items"]
    fired = {(i["rule"], i["column"]) for i in items}
    assert fired == {
        ("column_shape_below_floor", "kappa"),
        ("outcome_prevalence_drift", "death"),
        ("missingness_not_preserved", "creatinine"),
        ("categories_not_reproduced", "sex"),
        ("categories_dropped_by_declaration", "death"),
        ("more_rows_than_trained_on", None),
    }
    shape = next(i for i in items if i["rule"] == "column_shape_below_floor")
    assert (shape["value"], shape["threshold"]) == (0.61, 0.75)


def test_the_ons_level_stops_at_the_first_check_that_did_not_pass() -> None:
    def checks(**status: str) -> list[dict[str, Any]]:
        names = [
            "requested_columns_present", "bound_violation_rate", "column_shape_similarity",
            "missingness_similarity", "column_pair_trend_similarity", "tstr_auc_ratio",
        ]  # fmt: skip
        return [{"name": n, "status": status.get(n, "passed")} for n in names]

    assert ons_level(checks())["level"] == "multivariate_detailed"
    not_run = ons_level(checks(tstr_auc_ratio="not_run"))
    assert not_run["level"] == "multivariate_plausible" and "did not run" in not_run["next"]
    assert ons_level(checks(missingness_similarity="failed"))["level"] == "valid"
    assert ons_level(checks(requested_columns_present="failed"))["level"] == "none"


def test_the_card_api_answers_the_team_and_hides_the_release_from_another(
    release: Release, alice: Any, bob: Any, charlie: Any
) -> None:
    ok = _call(alice, release)
    assert ok.status_code == 200 and ok.data["release"] == str(release.pk)
    assert _call(bob, release).status_code == 200
    assert _call(charlie, release).status_code == 404
    hidden = _call(charlie, release, format="croissant")
    assert hidden.status_code == 404 and hidden["Content-Type"] == "application/json"

    croissant = _call(alice, release, format="croissant")
    assert croissant.status_code == 200 and croissant["Content-Type"].startswith("application/ld+json")
    doc = json.loads(croissant.content)
    assert doc["conformsTo"] == [CROISSANT_1_0, CROISSANT_RAI_1_0] and doc["rai:hasSyntheticData"] is True
    assert doc["distribution"][0]["sha256"] == release.sha256
    assert doc["distribution"][0]["contentUrl"].endswith(f"/api/v1/releases/{release.pk}/download/")
    fields = {f["name"]: f["dataType"] for f in doc["recordSet"][0]["field"]}
    assert list(fields) == release.columns
    assert (fields["age"], fields["kappa"], fields["sex"], fields["death"]) == (
        "sc:Integer", "sc:Float", "sc:Text", "sc:Boolean",
    )  # fmt: skip

    dataset = mlc.Dataset(jsonld=doc)  # raises mlc.ValidationError on any error
    metadata = dataset.metadata
    assert not metadata.ctx.issues.errors and not metadata.ctx.issues.warnings
    assert metadata.data_use_cases and metadata.data_limitations and metadata.data_biases
    assert [f.name for f in metadata.record_sets[0].fields] == release.columns

    broken = card_to_croissant(ok.data, download_url="https://example.org/release.csv")
    del broken["distribution"][0]["contentUrl"]
    with pytest.raises(mlc.ValidationError, match="contentUrl"):
        mlc.Dataset(jsonld=broken)
    untyped = card_to_croissant(ok.data, download_url="https://example.org/release.csv")
    del untyped["recordSet"][0]["field"][0]["dataType"]
    with pytest.raises(mlc.ValidationError):
        mlc.Dataset(jsonld=untyped)
