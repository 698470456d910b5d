"""The shipped rule set (policies/tiering.yaml) and the engine, table by table: every rule fires
exactly when it should, on both sides of each boundary, and the loader refuses bad drafts with the
line and field to fix. No database: the engine is a pure function."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from approvals.policies import Facts, PolicyError, evaluate, parse_policy, suggest
from approvals.policies.engine import matches, merge_controls

SHIPPED = (Path(__file__).resolve().parents[2] / "policies" / "tiering.yaml").read_text()
POLICY = parse_policy(SHIPPED)

# Fires no rule: internal, one "other" column, non-DP, nothing measured.
BASE = Facts(
    audience="internal",
    synthesizer="gaussian_copula",
    other_names=("kappa",),
    rows=100,
    source_rows=1000,
)
QI = ("age",)
DP1 = {"is_dp": True, "epsilon": 1.0, "synthesizer": "dp_test"}
# A federated study that fires no study rule: 3 sites, secure aggregation and client-level DP.
STUDY = {"kind": "federated_study", "sites": 3, "secure_aggregation": True, "client_dp": True, **DP1}


def facts(**overrides: Any) -> Facts:
    return replace(BASE, **overrides)


def fired_ids(f: Facts) -> set[str]:
    return {rule.id for rule in evaluate(POLICY, f).fired}


# --- Each rule, on both sides of its boundary ------------------------------------------------------

RULE_CASES = [
    # (case, facts overrides, rule expected to fire (or None), rule expected not to fire, tier)
    ("nothing fires", {}, "baseline", None, "low"),
    (
        "record-level DP where a patient id repeats",
        {"repeating_identifier_names": ("patient_id",), **DP1},
        "record_level_dp_repeated_entities",
        None,
        "high",
    ),
    (
        "patient-level DP (entity column declared) where the id repeats",
        {"repeating_identifier_names": ("patient_id",), "entity_column_declared": True, **DP1},
        None,
        "record_level_dp_repeated_entities",
        "low",
    ),
    (
        "a repeating id without DP (no DP claim to weaken)",
        {"repeating_identifier_names": ("patient_id",)},
        None,
        "record_level_dp_repeated_entities",
        "low",
    ),
    ("record-level DP on one row per patient", {**DP1}, None, "record_level_dp_repeated_entities", "low"),
    ("direct identifier", {"direct_identifier_names": ("ssn",)}, "direct_identifiers", None, "prohibited"),
    ("one sensitive column", {"sensitive_names": ("death",)}, "sensitive_columns", None, "medium"),
    ("no sensitive column", {}, None, "sensitive_columns", "low"),
    ("an uploaded synthetic file", {"synthesizer": "external_upload"}, "external_upload", None, "medium"),
    ("a file SynthGate synthesizes", {"synthesizer": "gaussian_copula"}, None, "external_upload", "low"),
    (
        "sensitive, external with DP",
        {"sensitive_names": ("death",), "audience": "external", **DP1},
        "sensitive_columns_external",
        None,
        "high",
    ),
    (
        "two quasi-identifiers",
        {"quasi_identifier_names": ("age", "sex")},
        None,
        "many_quasi_identifiers",
        "low",
    ),
    (
        "three quasi-identifiers",
        {"quasi_identifier_names": ("age", "sex", "zip")},
        "many_quasi_identifiers",
        None,
        "medium",
    ),
    (
        "five quasi-identifiers, internal",
        {"quasi_identifier_names": ("a", "b", "c", "d", "e")},
        "many_quasi_identifiers",
        "many_quasi_identifiers_shared",
        "medium",
    ),
    (
        "four quasi-identifiers, organization",
        {
            "quasi_identifier_names": ("a", "b", "c", "d"),
            "audience": "organization",
            "reidentification_risk": 0.01,
        },
        "many_quasi_identifiers",
        "many_quasi_identifiers_shared",
        "medium",
    ),
    (
        "five quasi-identifiers, organization",
        {
            "quasi_identifier_names": ("a", "b", "c", "d", "e"),
            "audience": "organization",
            "reidentification_risk": 0.01,
        },
        "many_quasi_identifiers_shared",
        None,
        "high",
    ),
    ("organization audience", {"audience": "organization"}, "organization_audience", None, "medium"),
    ("external with DP, epsilon 1", {"audience": "external", **DP1}, "external_with_dp", None, "medium"),
    (
        "external with DP, epsilon 1.01",
        {"audience": "external", **DP1, "epsilon": 1.01},
        "control.max_epsilon",
        None,
        "prohibited",
    ),
    (
        "external without DP, no quasi-identifier",
        {"audience": "external"},
        "external_without_dp",
        None,
        "high",
    ),
    (
        "external without DP, quasi-identifier, estimate unknown",
        {"audience": "external", "quasi_identifier_names": QI},
        "external_without_dp_quasi_identifiers",
        None,
        "prohibited",
    ),
    (
        "external without DP, quasi-identifier, estimate 5%",
        {"audience": "external", "quasi_identifier_names": QI, "reidentification_risk": 0.05},
        "external_without_dp",
        "external_without_dp_quasi_identifiers",
        "high",
    ),
    (
        "external without DP, quasi-identifier, estimate 5.01%",
        {"audience": "external", "quasi_identifier_names": QI, "reidentification_risk": 0.0501},
        "control.dp_required",
        None,
        "prohibited",
    ),
    (
        "external with DP, quasi-identifier, estimate unknown",
        {"audience": "external", "quasi_identifier_names": QI, **DP1},
        "reidentification_unknown_shared",
        "external_without_dp_quasi_identifiers",
        "medium",
    ),
    (
        "external without DP, high fidelity",
        {"audience": "external", "fidelity": "high"},
        "external_without_dp_high_fidelity",
        None,
        "prohibited",
    ),
    (
        "quasi-identifier, organization, estimate unknown",
        {"audience": "organization", "quasi_identifier_names": QI},
        "reidentification_unknown_shared",
        None,
        "medium",
    ),
    (
        "quasi-identifier, internal, estimate unknown",
        {"quasi_identifier_names": QI},
        None,
        "reidentification_unknown_shared",
        "low",
    ),
    (
        "quasi-identifier, estimate 5%",
        {"quasi_identifier_names": QI, "reidentification_risk": 0.05},
        None,
        "reidentification_elevated",
        "low",
    ),
    (
        "quasi-identifier, estimate 6%",
        {"quasi_identifier_names": QI, "reidentification_risk": 0.06},
        "reidentification_elevated",
        None,
        "medium",
    ),
    (
        "estimate 50% but no quasi-identifier requested",
        {"reidentification_risk": 0.5},
        None,
        "reidentification_elevated",
        "low",
    ),
    (
        "external with DP, estimate 20%",
        {"audience": "external", "quasi_identifier_names": QI, "reidentification_risk": 0.20, **DP1},
        "reidentification_elevated",
        "reidentification_high_external",
        "medium",
    ),
    (
        "external with DP, estimate 21%",
        {"audience": "external", "quasi_identifier_names": QI, "reidentification_risk": 0.21, **DP1},
        "reidentification_high_external",
        None,
        "high",
    ),
    (
        "small cells, organization",
        {"audience": "organization", "small_cells": 1},
        "small_cells_shared_without_dp",
        None,
        "medium",
    ),
    (
        "no small cells, organization",
        {"audience": "organization", "small_cells": 0},
        None,
        "small_cells_shared_without_dp",
        "medium",
    ),
    ("small cells unknown", {"audience": "organization"}, None, "small_cells_shared_without_dp", "medium"),
    ("small cells, internal", {"small_cells": 9}, None, "small_cells_shared_without_dp", "low"),
    (
        "small cells, organization, DP",
        {"audience": "organization", "small_cells": 9, **DP1},
        None,
        "small_cells_shared_without_dp",
        "medium",
    ),
    ("rows 5x the source", {"rows": 5000}, None, "rows_far_above_source", "low"),
    ("rows just over 5x the source", {"rows": 5001}, "rows_far_above_source", None, "medium"),
    ("DP epsilon 5", {**DP1, "epsilon": 5.0}, None, "weak_epsilon", "low"),
    ("DP epsilon 5.5", {**DP1, "epsilon": 5.5}, "weak_epsilon", None, "medium"),
    ("high fidelity, internal", {"fidelity": "high"}, None, "high_fidelity_shared", "low"),
    (
        "high fidelity, organization",
        {"fidelity": "high", "audience": "organization"},
        "high_fidelity_shared",
        None,
        "medium",
    ),
    (
        "software testing, medium fidelity",
        {"purpose_category": "software_testing"},
        "software_testing_fidelity",
        None,
        "medium",
    ),
    (
        "software testing, low fidelity",
        {"purpose_category": "software_testing", "fidelity": "low"},
        None,
        "software_testing_fidelity",
        "low",
    ),
    (
        "external-sharing purpose",
        {"purpose_category": "external_sharing"},
        "external_sharing_purpose",
        None,
        "medium",
    ),
    # Models and federated studies (issue 15; more in test_dp_model_requests.py).
    (
        "external DP model",
        {"kind": "dp_model", "audience": "external", **DP1},
        "dp_model_external",
        None,
        "high",
    ),
    (
        "organization DP model",
        {"kind": "dp_model", "audience": "organization", **DP1},
        None,
        "dp_model_external",
        "medium",
    ),
    (
        "study without secure aggregation",
        {**STUDY, "secure_aggregation": False},
        "federated_without_secure_aggregation",
        "federated_unprotected",
        "medium",
    ),
    (
        "study without client DP",
        {**STUDY, "client_dp": False, "is_dp": False, "epsilon": None},
        "federated_without_client_dp",
        "federated_unprotected",
        "medium",
    ),
    (
        "study with neither",
        {**STUDY, "secure_aggregation": False, "client_dp": False, "is_dp": False, "epsilon": None},
        "federated_unprotected",
        None,
        "high",
    ),
    ("study of 2 sites", {**STUDY, "sites": 2}, "federated_few_sites", None, "high"),
    ("study of 3 sites", STUDY, None, "federated_few_sites", "low"),
    ("external study", {**STUDY, "audience": "external"}, "federated_external_needs_dp", None, "high"),
]


@pytest.mark.parametrize(
    ("overrides", "fires", "silent", "tier"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_each_rule_fires_exactly_at_its_boundary(
    overrides: dict[str, Any], fires: str | None, silent: str | None, tier: str
) -> None:
    f = facts(**overrides)
    ids = fired_ids(f)
    if fires:
        assert fires in ids
    if silent:
        assert silent not in ids
    assert evaluate(POLICY, f).level == tier


def test_every_shipped_rule_is_exercised_by_the_table() -> None:
    exercised = {case[2] for case in RULE_CASES} | {case[3] for case in RULE_CASES}
    assert {rule.id for rule in POLICY.rules} <= exercised


# --- Tier boundaries and the controls each tier requires -------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "tier", "approvals", "roles", "gate", "expiry"),
    [
        ({}, "low", 1, ["privacy_officer"], {"column_shape_min": 0.70, "exact_copy_rate_max": 0.02}, 365),
        (
            {"sensitive_names": ("death",)},
            "medium",
            1,
            ["privacy_officer"],
            {"column_shape_min": 0.75, "exact_copy_rate_max": 0.01},
            180,
        ),
        (
            {"audience": "external"},
            "high",
            2,
            ["privacy_officer", "data_steward"],
            {
                "column_shape_min": 0.80,
                "exact_copy_rate_max": 0.005,
                "required_checks": [
                    "membership_inference_auc",
                    "singling_out_risk",
                    "linkability_risk",
                    "inference_risk",
                    "tstr_auc_ratio",
                ],
            },
            90,
        ),
        ({"direct_identifier_names": ("ssn",)}, "prohibited", 0, [], {}, 0),
    ],
)
def test_each_tier_requires_its_controls(
    overrides: dict[str, Any],
    tier: str,
    approvals: int,
    roles: list[str],
    gate: dict[str, float],
    expiry: int,
) -> None:
    assessment = evaluate(POLICY, facts(**overrides))
    assert assessment.level == tier
    controls = assessment.controls
    assert controls["required_approvals"] == approvals == assessment.required_approvals
    assert controls["approver_roles"] == roles
    assert controls["gate"] == gate
    assert controls["expiry_days"] == expiry
    if tier != "prohibited":
        assert controls["min_privacy_officer_approvals"] == 1


def test_the_highest_tier_among_fired_rules_wins_and_every_reason_is_listed() -> None:
    f = facts(
        audience="organization", sensitive_names=("death",), quasi_identifier_names=("a", "b", "c", "d", "e")
    )
    assessment = evaluate(POLICY, f)
    assert assessment.level == "high"
    assert {"organization_audience", "sensitive_columns", "many_quasi_identifiers_shared"} <= fired_ids(f)
    assert len(assessment.reasons) == len(assessment.fired) >= 4


def test_rule_controls_only_tighten_the_tier_defaults() -> None:
    controls = evaluate(POLICY, facts(audience="organization", small_cells=3, fidelity="high")).controls
    assert controls["gate"] == {"column_shape_min": 0.80, "exact_copy_rate_max": 0.005}
    assert controls["expiry_days"] == 180  # medium tier default; no rule lengthens it


def test_access_level_follows_the_audience() -> None:
    for audience in ("internal", "organization", "external"):
        assert evaluate(POLICY, facts(audience=audience, **DP1)).controls["access_level"] == audience


# --- The Done-when case: external, non-DP, quasi-identifiers ----------------------------------------


@pytest.mark.parametrize("risk", [None, 0.078])
def test_external_non_dp_with_quasi_identifiers_is_prohibited_saying_what_to_change(
    risk: float | None,
) -> None:
    f = facts(audience="external", quasi_identifier_names=("age", "sex"), reidentification_risk=risk)
    assessment = evaluate(POLICY, f)
    assert assessment.level == "prohibited"
    assert assessment.controls["dp_required"] is True and assessment.controls["max_epsilon"] == 1.0
    reasons = " ".join(assessment.reasons)
    assert "External audience without DP" in reasons and "DP with epsilon <= 1 required" in reasons
    assert "age, sex" in reasons
    assert "choose a DP synthesizer (named dp_*) with epsilon <= 1" in reasons
    if risk is None:
        assert "unknown counts as above 5%" in reasons


def test_the_same_request_with_dp_at_epsilon_one_is_allowed() -> None:
    f = facts(audience="external", quasi_identifier_names=("age",), reidentification_risk=0.078, **DP1)
    assert evaluate(POLICY, f).level == "medium"


def test_messages_name_columns_and_estimates_never_values() -> None:
    f = facts(quasi_identifier_names=("age",), reidentification_risk=0.0783)
    reasons = evaluate(POLICY, f).reasons
    assert any("7.8% of the dataset's rows are unique" in r for r in reasons)


# --- What would lower the tier -----------------------------------------------------------------------


def test_suggestions_are_single_changes_that_lower_the_tier() -> None:
    f = facts(audience="external", quasi_identifier_names=("age", "sex"), sensitive_names=("death",))
    suggestions = suggest(POLICY, f, dp_available=False)
    changes = [s.change for s in suggestions]
    assert "Choose the internal audience (your team only)." in changes
    assert any(c.startswith("Use a DP synthesizer") and "none is installed yet" in c for c in changes)
    assert any("Drop the quasi-identifiers `age`, `sex`" in c for c in changes)
    for s in suggestions:
        assert s.level in ("low", "medium", "high")  # all below prohibited
    assert [s.level for s in suggestions] == sorted(
        (s.level for s in suggestions), key=["low", "medium", "high"].index
    )


def test_no_suggestions_at_the_lowest_tier() -> None:
    assert suggest(POLICY, BASE) == []


# --- The condition language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        ({"fact": "rows", "eq": 5}, {"rows": 5}, True),
        ({"fact": "rows", "ne": 5}, {"rows": 5}, False),
        ({"fact": "rows", "gt": 5}, {"rows": 5}, False),
        ({"fact": "rows", "gte": 5}, {"rows": 5}, True),
        ({"fact": "rows", "lt": 5}, {"rows": 5}, False),
        ({"fact": "rows", "lte": 5}, {"rows": 5}, True),
        ({"fact": "audience", "in": ["internal", "external"]}, {"audience": "external"}, True),
        ({"fact": "audience", "not_in": ["internal", "external"]}, {"audience": "external"}, False),
        ({"fact": "epsilon", "gt": 1}, {"epsilon": None}, False),
        ({"fact": "epsilon", "lte": 1}, {"epsilon": None}, False),
        ({"fact": "epsilon", "ne": 1}, {"epsilon": None}, False),  # unknown satisfies no comparison
        ({"fact": "epsilon", "unknown": True}, {"epsilon": None}, True),
        ({"fact": "epsilon", "unknown": False}, {"epsilon": 2.0}, True),
        ({"all": [{"fact": "rows", "gt": 1}, {"fact": "rows", "lt": 3}]}, {"rows": 2}, True),
        ({"any": [{"fact": "rows", "gt": 9}, {"fact": "rows", "lt": 3}]}, {"rows": 2}, True),
        ({"not": {"fact": "rows", "eq": 2}}, {"rows": 2}, False),
    ],
)
def test_conditions(condition: dict[str, Any], values: dict[str, Any], expected: bool) -> None:
    assert matches(condition, values) is expected


@pytest.mark.parametrize(
    ("base", "override", "expected"),
    [
        ({"required_approvals": 1}, {"required_approvals": 2}, {"required_approvals": 2}),
        ({"required_approvals": 3}, {"required_approvals": 2}, {"required_approvals": 3}),
        ({"max_epsilon": None}, {"max_epsilon": 1.0}, {"max_epsilon": 1.0}),
        ({"max_epsilon": 0.5}, {"max_epsilon": 1.0}, {"max_epsilon": 0.5}),
        ({"dp_required": True}, {"dp_required": False}, {"dp_required": True}),
        ({"expiry_days": 90}, {"expiry_days": 180}, {"expiry_days": 90}),
        (
            {"gate": {"column_shape_min": 0.7}},
            {"gate": {"column_shape_min": 0.8}},
            {"gate": {"column_shape_min": 0.8}},
        ),
        (
            {"gate": {"exact_copy_rate_max": 0.01}},
            {"gate": {"exact_copy_rate_max": 0.02}},
            {"gate": {"exact_copy_rate_max": 0.01}},
        ),
        ({"access_level": "external"}, {"access_level": "internal"}, {"access_level": "internal"}),
        ({"max_generation_attempts": 3}, {"max_generation_attempts": 1}, {"max_generation_attempts": 1}),
        ({"max_generation_attempts": 1}, {"max_generation_attempts": 3}, {"max_generation_attempts": 1}),
    ],
)
def test_merging_controls_keeps_the_stricter_value(
    base: dict[str, Any], override: dict[str, Any], expected: dict[str, Any]
) -> None:
    merged = merge_controls(base, override)
    for key, value in expected.items():
        assert merged[key] == value


# --- The loader refuses bad drafts, saying where ------------------------------------------------------


def _edit(old: str, new: str) -> str:
    assert old in SHIPPED, old
    return SHIPPED.replace(old, new, 1)


def _line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


@pytest.mark.parametrize(
    ("draft", "path", "message", "line_of"),
    [
        (
            _edit("fact: audience, eq: organization", "fact: audiance, eq: organization"),
            ".when.fact",
            "unknown fact",
            "audiance",
        ),
        (
            _edit("fact: audience, eq: organization", "fact: audience, eq: everyone"),
            ".when.eq",
            "is one of",
            "eq: everyone",
        ),
        (
            _edit("fact: rows_ratio, gt: 5", "fact: rows_ratio, above: 5"),
            ".when.above",
            "unknown operator",
            "above: 5",
        ),
        (
            _edit("fact: rows_ratio, gt: 5", "fact: rows_ratio, gt: five"),
            ".when.gt",
            "is a number",
            "gt: five",
        ),
        (
            _edit("fact: audience, eq: organization", "fact: audience, gt: 3"),
            ".when.gt",
            "not a number",
            "gt: 3",
        ),
        (
            _edit("fact: audience, eq: organization", "fact: audience, unknown: true"),
            ".when.unknown",
            "always known",
            "unknown: true}",
        ),
        (
            _edit("  - id: organization_audience", "  - id: sensitive_columns"),
            ".id",
            "used by an earlier rule",
            "id: sensitive_columns\n    when: {fact: audience",
        ),
        (
            _edit("  - id: organization_audience", "  - id: Organization Audience"),
            ".id",
            "lower_snake_case",
            "Organization Audience",
        ),
        (
            _edit('    tier: prohibited\n    message: "Direct', '    tier: extreme\n    message: "Direct'),
            ".tier",
            "must be one of",
            "tier: extreme",
        ),
        (
            _edit(
                "Sensitive columns requested ({sensitive_names})", "Sensitive columns requested ({secret})"
            ),
            ".message",
            "unknown placeholder",
            "{secret}",
        ),
        (
            _edit("    required_approvals: 2\n", "    required_approvals: 1\n"),
            "tiers.high.required_approvals",
            "at least 2",
            "required_approvals: 1\n    min_privacy_officer_approvals: 1\n    approver_roles: [privacy_officer, data_steward]",
        ),
        (
            _edit("approver_roles: [privacy_officer, data_steward]", "approver_roles: [data_steward]"),
            "tiers.high.approver_roles",
            "must include privacy_officer",
            "approver_roles: [data_steward]",
        ),
        (
            _edit(
                "approver_roles: [privacy_officer, data_steward]", "approver_roles: [privacy_officer, admin]"
            ),
            "tiers.high.approver_roles[1]",
            "privacy_officer or data_steward",
            "approver_roles: [privacy_officer, admin]",
        ),
        (
            _edit("      exact_copy_rate_max: 0.005\n", ""),
            "tiers.high.gate",
            "exact_copy_rate_max",
            "gate:\n      column_shape_min: 0.80",
        ),
        (
            _edit("      exact_copy_rate_max: 0.005\n", "      exact_copy_rate_max: 5\n"),
            "exact_copy_rate_max",
            "from 0 to 1",
            "exact_copy_rate_max: 5\n",
        ),
        (
            _edit("    expiry_days: 90", "    expiry_days: 400"),
            "tiers.high.expiry_days",
            "at most the medium tier",
            "expiry_days: 400",
        ),
        (
            _edit("    max_generation_attempts: 2", "    max_generation_attempts: 5"),
            "tiers.high.max_generation_attempts",
            "at most the medium tier",
            "max_generation_attempts: 5",
        ),
        (
            _edit("    max_generation_attempts: 2", "    max_generation_attempts: -1"),
            "tiers.high.max_generation_attempts",
            "from 0 to 20",
            "max_generation_attempts: -1",
        ),
        (
            _edit("controls: {max_epsilon: 1.0}", "controls: {max_epsilon: -1}"),
            ".controls.max_epsilon",
            "above 0",
            "max_epsilon: -1",
        ),
        (
            _edit("controls: {max_epsilon: 1.0}", "controls: {approver_roles: [privacy_officer]}"),
            ".controls.approver_roles",
            "unknown key",
            "controls: {approver_roles",
        ),
        (_edit("schema: 1", "schema: 2"), "schema", "must be 1", "schema: 2"),
        (
            _edit("name: SynthGate risk tiering", "name: SynthGate risk tiering\nname: again"),
            "name",
            "appears twice",
            "name: again",
        ),
    ],
)
def test_invalid_drafts_are_refused_with_line_and_field(
    draft: str, path: str, message: str, line_of: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(draft)
    matching = [p for p in refused.value.problems if path in p.path and message in p.message]
    assert matching, refused.value.problems
    assert matching[0].line == _line_of(draft, line_of)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("a: &x [1]\nb: *x\n", "anchors and aliases"),
        ("- just\n- a list\n", "must be a mapping"),
        ("", "must be a mapping"),
        ("[" * 5000, "nested more than 24 levels deep"),
        ("x" * 200_001, "over 200,000 characters"),
    ],
)
def test_non_policies_are_refused_without_crashing(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text)
    assert message in str(refused.value)


def test_the_shipped_file_is_valid_and_every_tier_has_gate_keys_the_validation_app_reads() -> None:
    for level in ("low", "medium", "high"):
        assert {"column_shape_min", "exact_copy_rate_max"} <= set(POLICY.tiers[level]["gate"])


def test_max_generation_attempts_is_optional_so_earlier_rule_sets_stay_valid() -> None:
    earlier = "\n".join(line for line in SHIPPED.splitlines() if "max_generation_attempts:" not in line)
    policy = parse_policy(earlier)

    controls = evaluate(policy, facts()).controls

    assert "max_generation_attempts" not in controls  # the request then gets DEFAULT_MAX_ATTEMPTS (1)


def test_each_shipped_tier_caps_generation_attempts() -> None:
    assert evaluate(POLICY, facts()).controls["max_generation_attempts"] == 3
    high = facts(audience="external", sensitive_names=("death",), **DP1)
    assert evaluate(POLICY, high).level == "high"
    assert evaluate(POLICY, high).controls["max_generation_attempts"] == 2
