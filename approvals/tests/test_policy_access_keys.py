"""The two catalog-access tier keys of a rule set: `discoverable` (default true) and
`team_steward_decides_access` (default false). The loader takes booleans only, in tiers and in
rules' controls; rules may only turn them off (false wins); a riskier tier may not be more open
than a safer one; and every submission records both in its tier controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from approvals.policies import Facts, PolicyError, evaluate, parse_policy
from approvals.policies.engine import merge_controls
from approvals.services import request_submit
from approvals.services.policy import policy_file

KEYS = ("discoverable", "team_steward_decides_access")
DEFAULTS = {"discoverable": True, "team_steward_decides_access": False}


def _shipped() -> str:
    return policy_file().read_text()


def _tiers_say(key: str, value: str, *, tiers: tuple[str, ...] = ("low", "medium", "high")) -> str:
    """The shipped policy with `key: value` in the given tiers (and the default elsewhere)."""
    text = _shipped()
    default = "true" if DEFAULTS[key] else "false"
    lines = text.splitlines(keepends=True)
    out, tier = [], ""
    for line in lines:
        stripped = line.strip()
        if line.startswith("  ") and not line.startswith("    ") and stripped.endswith(":"):
            tier = stripped[:-1]
        if line == f"    {key}: {default}\n" and tier in tiers:
            line = f"    {key}: {value}\n"
        out.append(line)
    changed = "".join(out)
    assert changed != text or value == default, "the shipped policy no longer lists the key per tier"
    return changed


def _with_rule(controls: str) -> str:
    """The shipped policy plus one rule that always fires (audience is always one of these) and
    sets `controls`."""
    rule = (
        "  - id: access_key_probe\n"
        "    when: {fact: audience, in: [internal, organization, external]}\n"
        "    tier: low\n"
        '    message: "probe"\n'
        f"    controls: {controls}\n"
    )
    text = _shipped()
    assert "\nrules:\n" in text
    return text.replace("\nrules:\n", "\nrules:\n" + rule, 1)


def _facts() -> Facts:
    return Facts(audience="internal", rows=100, source_rows=600, other_names=("age",))


# --- The loader ----------------------------------------------------------------------------------


def test_the_shipped_policy_states_both_defaults_at_every_graded_tier() -> None:
    policy = parse_policy(_shipped())
    for level in ("low", "medium", "high"):
        assert {k: policy.tiers[level][k] for k in KEYS} == DEFAULTS


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("value", ["true", "false"])
def test_the_loader_accepts_booleans_in_tiers(key: str, value: str) -> None:
    # Every tier the same value: monotonic whichever it is.
    policy = parse_policy(_tiers_say(key, value))
    assert policy.tiers["high"][key] is (value == "true")


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("value", ['"true"', "1", "0", "null", "[true]", "maybe"])
def test_the_loader_refuses_anything_but_a_boolean_in_a_tier(key: str, value: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(_tiers_say(key, value, tiers=("low",)))
    [problem] = [p for p in refused.value.problems if p.path == f"tiers.low.{key}"]
    assert problem.message == "must be true or false (unquoted)"
    assert problem.line is not None  # the administrator is told where


@pytest.mark.parametrize("key", KEYS)
def test_the_loader_accepts_both_keys_in_a_rules_controls(key: str) -> None:
    policy = parse_policy(_with_rule(f"{{{key}: false}}"))
    [probe] = [r for r in policy.rules if r.id == "access_key_probe"]
    assert probe.controls == {key: False}


@pytest.mark.parametrize("key", KEYS)
def test_the_loader_refuses_text_in_a_rules_controls(key: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(_with_rule(f'{{{key}: "no"}}'))
    assert any(
        p.path.endswith(f".controls.{key}") and p.message == "must be true or false (unquoted)"
        for p in refused.value.problems
    )


def test_a_riskier_tier_may_not_be_more_discoverable_than_a_safer_one() -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(_tiers_say("discoverable", "false", tiers=("low",)))
    assert [p.path for p in refused.value.problems] == ["tiers.medium.discoverable"]
    # Hiding only the riskier tiers is the right way round.
    parse_policy(_tiers_say("discoverable", "false", tiers=("medium", "high")))


def test_a_riskier_tier_may_not_delegate_access_when_a_safer_one_does_not() -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(_tiers_say("team_steward_decides_access", "true", tiers=("high",)))
    assert [p.path for p in refused.value.problems] == ["tiers.high.team_steward_decides_access"]
    parse_policy(_tiers_say("team_steward_decides_access", "true", tiers=("low", "medium")))


def test_an_absent_key_counts_as_its_default_for_monotonicity() -> None:
    # low says nothing (default: discoverable), medium hides: fine; low hides, medium silent: not.
    text = _shipped().replace("    discoverable: true\n", "", 1)
    parse_policy(text.replace("    discoverable: true\n", "    discoverable: false\n"))
    hidden_low = _tiers_say("discoverable", "false", tiers=("low",))
    hidden_low = hidden_low.replace("    discoverable: true\n", "")  # medium and high now silent
    with pytest.raises(PolicyError) as refused:
        parse_policy(hidden_low)
    assert "tiers.medium.discoverable" in [p.path for p in refused.value.problems]


# --- Merging: false wins ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    ("base", "rule", "merged"),
    [(True, False, False), (False, True, False), (False, False, False), (True, True, True)],
)
def test_a_rule_may_only_turn_a_key_off(key: str, base: bool, rule: bool, merged: bool) -> None:
    assert merge_controls({key: base}, {key: rule})[key] is merged


def test_merging_into_a_tier_that_is_silent_starts_from_the_default() -> None:
    # A rule cannot delegate access where the tier said nothing (the default is officers only) ...
    assert merge_controls({}, {"team_steward_decides_access": True})["team_steward_decides_access"] is False
    # ... and saying `discoverable: true` changes nothing (the default is discoverable).
    assert merge_controls({}, {"discoverable": True})["discoverable"] is True
    assert merge_controls({}, {"discoverable": False})["discoverable"] is False


def test_evaluate_records_both_defaults_when_the_tier_is_silent() -> None:
    text = (
        _shipped()
        .replace("    discoverable: true\n", "")
        .replace("    team_steward_decides_access: false\n", "")
    )
    controls = evaluate(parse_policy(text), _facts()).controls
    assert {k: controls[k] for k in KEYS} == DEFAULTS


def test_a_firing_rule_hides_the_release_and_takes_the_delegation_away() -> None:
    text = _tiers_say("team_steward_decides_access", "true")
    assert evaluate(parse_policy(text), _facts()).controls["team_steward_decides_access"] is True
    hiding = text.replace(
        "\nrules:\n",
        "\nrules:\n"
        "  - id: access_key_probe\n"
        "    when: {fact: audience, eq: internal}\n"
        "    tier: low\n"
        '    message: "probe"\n'
        "    controls: {discoverable: false, team_steward_decides_access: false}\n",
        1,
    )
    controls = evaluate(parse_policy(hiding), _facts()).controls
    assert controls["discoverable"] is False
    assert controls["team_steward_decides_access"] is False


# --- The snapshot on the request --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_submission_records_both_keys_in_its_tier_controls(
    make_request: Any, alice: Any, settings: Any, tmp_path: Path
) -> None:
    custom = tmp_path / "tiering.yaml"
    text = _tiers_say("team_steward_decides_access", "true")
    custom.write_text(_tiers_say_text(text, "discoverable", "false"))
    settings.SYNTHGATE_POLICY_FILE = custom

    submitted = request_submit(actor=alice, request_id=make_request().pk)

    assert submitted.tier_controls["discoverable"] is False
    assert submitted.tier_controls["team_steward_decides_access"] is True


@pytest.mark.django_db
def test_the_shipped_policy_records_the_defaults(submitted_request: Any) -> None:
    assert {k: submitted_request.tier_controls[k] for k in KEYS} == DEFAULTS


def _tiers_say_text(text: str, key: str, value: str) -> str:
    default = "true" if DEFAULTS[key] else "false"
    assert text.count(f"    {key}: {default}\n") == 3
    return text.replace(f"    {key}: {default}\n", f"    {key}: {value}\n")
