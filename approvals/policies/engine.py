"""The risk-tiering engine: a pure function from (rule set, facts) to a tier, reasons and controls.

No database, no Django: the same function tiers a submission, renders the live preview and is
tested table by table. The rule set is data (policies/tiering.yaml, parsed by `loader`).

Unknown facts (None) never satisfy a comparison; a rule that wants to treat "unknown" as risky
says so with the `unknown` operator, and its message says so too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from validation.gate import CHECK_NAMES, REQUIRED_CHECKS_KEY

LEVELS = ("low", "medium", "high", "prohibited")
AUDIENCES = ("internal", "organization", "external")
FIDELITIES = ("low", "medium", "high")
PURPOSES = ("model_development", "research", "education", "software_testing", "external_sharing")
# approvals.choices.RequestKind, repeated so this module stays free of Django imports.
KINDS = ("synthetic_table", "dp_model", "federated_study")
# generation.synthesizers.EXTERNAL_UPLOAD, repeated so this module stays free of Django imports.
EXTERNAL_UPLOAD = "external_upload"
# Generation attempts a request gets when its policy does not say (the original run only).
DEFAULT_MAX_ATTEMPTS = 1
# Catalog access, narrowest first: a rule may narrow the audience-derived level, never widen it.
ACCESS_LEVELS = ("internal", "organization", "external")
# Optional catalog controls and their values when a tier does not set them (policies written
# before they existed): every signed-in member may find a release's card summary (never its data)
# and ask for access; only privacy officers decide access requests. For both, false is stricter.
DEFAULT_DISCOVERABLE = True
DEFAULT_TEAM_STEWARD_DECIDES_ACCESS = False


@dataclass(frozen=True)
class FactSpec:
    """What a fact is, so the loader can refuse rules that compare it with the wrong thing."""

    kind: str  # "choice" | "bool" | "int" | "number" | "text" (a name, compared with eq/ne/in/not_in)
    description: str
    choices: tuple[str, ...] = ()
    nullable: bool = False


FACTS: dict[str, FactSpec] = {
    "audience": FactSpec("choice", "who will see the release", AUDIENCES),
    "fidelity": FactSpec("choice", "how closely the synthetic data must match", FIDELITIES),
    "purpose_category": FactSpec("choice", "what the data is for", PURPOSES),
    "is_dp": FactSpec("bool", "the synthesizer is differentially private"),
    "epsilon": FactSpec("number", "the DP budget requested (None when not DP)", nullable=True),
    "delta": FactSpec(
        "number", "the DP delta requested (None when not DP; 0 for pure epsilon-DP)", nullable=True
    ),
    "entity_column_declared": FactSpec(
        "bool", "the steward declared the dataset's entity (patient) column: DP protects patients"
    ),
    "identifier_repeats": FactSpec(
        "bool",
        "an identifier column (classified or suggested as a direct identifier) has fewer distinct "
        "values than filled rows: some people have several rows",
    ),
    "quasi_identifiers": FactSpec("int", "quasi-identifier columns requested"),
    "sensitive_columns": FactSpec("int", "sensitive columns requested"),
    "direct_identifiers": FactSpec("int", "direct-identifier columns requested"),
    "columns": FactSpec("int", "columns requested"),
    "small_cells": FactSpec("int", "small cells in the source (None: not measured)", nullable=True),
    "rows": FactSpec("int", "synthetic rows requested"),
    "source_rows": FactSpec("int", "rows in the source dataset"),
    "rows_ratio": FactSpec("number", "rows requested / source rows"),
    "external_upload": FactSpec("bool", "the synthetic file is made outside SynthGate and uploaded"),
    "reidentification_risk": FactSpec(
        "number", "share of source rows unique on their quasi-identifiers (None: unknown)", nullable=True
    ),
    # What is asked for, and for a model or a study how it is trained (issue 15).
    "kind": FactSpec(
        "choice", "what is requested: a synthetic table, a DP model or a federated study", KINDS
    ),
    "model_family": FactSpec(
        "text",
        "the model family of a dp_model request or a federated study, e.g. logistic_regression "
        "(None for a synthetic table)",
        nullable=True,
    ),
    "sites": FactSpec("int", "sites taking part in a federated study (0 unless a study)"),
    "secure_aggregation": FactSpec(
        "bool", "a federated study's server sees only the sum of the sites' updates (secure aggregation)"
    ),
    "client_dp": FactSpec(
        "bool", "a federated study adds differentially private noise to each site's update (client-level DP)"
    ),
}

# Placeholders a rule's message may use besides the facts themselves.
MESSAGE_EXTRAS = (
    "synthesizer",
    "quasi_identifier_names",
    "sensitive_names",
    "direct_identifier_names",
    "reidentification_pct",
    "repeating_identifier_names",
)


@dataclass(frozen=True)
class Facts:
    """Everything the policy may look at. Names are column names (never data values)."""

    audience: str
    fidelity: str = "medium"
    purpose_category: str = "research"
    synthesizer: str = ""
    is_dp: bool = False
    epsilon: float | None = None
    delta: float | None = None
    quasi_identifier_names: tuple[str, ...] = ()
    sensitive_names: tuple[str, ...] = ()
    direct_identifier_names: tuple[str, ...] = ()
    other_names: tuple[str, ...] = ()
    rows: int = 1
    source_rows: int = 0
    small_cells: int | None = None
    reidentification_risk: float | None = None
    entity_column_declared: bool = False
    # Identifier columns of the dataset whose values repeat across rows (names only).
    repeating_identifier_names: tuple[str, ...] = ()
    # What is requested (KINDS). A dp_model request is DP (is_dp) with its epsilon; a federated
    # study says how many sites train, whether the server sees only summed updates and whether
    # each site's update is noised (client-level DP).
    kind: str = "synthetic_table"
    model_family: str = ""
    sites: int = 0
    secure_aggregation: bool = False
    client_dp: bool = False

    def values(self) -> dict[str, Any]:
        """The facts rules compare, by name (see FACTS)."""
        return {
            "audience": self.audience,
            "fidelity": self.fidelity,
            "purpose_category": self.purpose_category,
            "is_dp": self.is_dp,
            "epsilon": self.epsilon if self.is_dp else None,
            "delta": (self.delta or 0.0) if self.is_dp else None,
            "entity_column_declared": self.entity_column_declared,
            "identifier_repeats": bool(self.repeating_identifier_names),
            "quasi_identifiers": len(self.quasi_identifier_names),
            "sensitive_columns": len(self.sensitive_names),
            "direct_identifiers": len(self.direct_identifier_names),
            "columns": len(self.all_columns()),
            "small_cells": self.small_cells,
            "rows": self.rows,
            "source_rows": self.source_rows,
            "rows_ratio": self.rows / self.source_rows if self.source_rows else 0.0,
            "external_upload": self.synthesizer == EXTERNAL_UPLOAD,
            "reidentification_risk": self.reidentification_risk,
            "kind": self.kind,
            "model_family": self.model_family or None,
            "sites": self.sites,
            "secure_aggregation": self.secure_aggregation,
            "client_dp": self.client_dp,
        }

    def all_columns(self) -> tuple[str, ...]:
        return (
            self.direct_identifier_names
            + self.quasi_identifier_names
            + self.sensitive_names
            + self.other_names
        )

    def without_columns(self, names: Iterable[str]) -> Facts:
        drop = set(names)

        def keep(group: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(n for n in group if n not in drop)

        return replace(
            self,
            quasi_identifier_names=keep(self.quasi_identifier_names),
            sensitive_names=keep(self.sensitive_names),
            direct_identifier_names=keep(self.direct_identifier_names),
            other_names=keep(self.other_names),
        )


@dataclass(frozen=True)
class Rule:
    id: str
    when: Mapping[str, Any]
    tier: str
    message: str
    controls: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    """A validated rule set (see loader.parse_policy)."""

    name: str
    tiers: Mapping[str, Mapping[str, Any]]
    rules: tuple[Rule, ...]
    baseline_reason: str


@dataclass(frozen=True)
class FiredRule:
    id: str
    tier: str
    message: str


@dataclass(frozen=True)
class Assessment:
    level: str
    fired: tuple[FiredRule, ...]
    controls: dict[str, Any]

    @property
    def reasons(self) -> list[str]:
        return [rule.message for rule in self.fired]

    @property
    def required_approvals(self) -> int:
        return int(self.controls.get("required_approvals", 0))


@dataclass(frozen=True)
class Suggestion:
    """One change the requester could make, and the tier it would give."""

    change: str
    level: str


def rank(level: str) -> int:
    return LEVELS.index(level)


# --- Conditions --------------------------------------------------------------------------------

COMPARATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")
OPERATORS = (*COMPARATORS, "unknown")


def matches(condition: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """True when the condition holds. Shapes: {all: [...]}, {any: [...]}, {not: c}, or a leaf."""
    if "all" in condition:
        return all(matches(c, values) for c in condition["all"])
    if "any" in condition:
        return any(matches(c, values) for c in condition["any"])
    if "not" in condition:
        return not matches(condition["not"], values)
    return _leaf(condition, values[condition["fact"]])


def _leaf(condition: Mapping[str, Any], value: Any) -> bool:
    op = next(k for k in condition if k != "fact")
    expected = condition[op]
    if op == "unknown":
        return (value is None) == bool(expected)
    if value is None:
        return False  # an unknown fact satisfies no comparison; rules say `unknown` explicitly
    return _compare(op, value, expected)


def _compare(op: str, value: Any, expected: Any) -> bool:
    if op == "eq":
        return bool(value == expected)
    if op == "ne":
        return bool(value != expected)
    if op == "in":
        return value in expected
    if op == "not_in":
        return value not in expected
    if op == "gt":
        return bool(value > expected)
    if op == "gte":
        return bool(value >= expected)
    if op == "lt":
        return bool(value < expected)
    return bool(value <= expected)  # lte


# --- Messages ----------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render_message(template: str, facts: Facts) -> str:
    """Fill {placeholders} from the facts. Only plain names: no attribute or format tricks."""
    values = {**facts.values(), **_extras(facts)}
    return PLACEHOLDER.sub(lambda m: _text(values.get(m.group(1))), template)


def _extras(facts: Facts) -> dict[str, Any]:
    risk = facts.reidentification_risk
    return {
        "synthesizer": facts.synthesizer,
        "quasi_identifier_names": ", ".join(facts.quasi_identifier_names),
        "sensitive_names": ", ".join(facts.sensitive_names),
        "direct_identifier_names": ", ".join(facts.direct_identifier_names),
        "reidentification_pct": "unknown" if risk is None else f"{risk:.1%}",
        "repeating_identifier_names": ", ".join(facts.repeating_identifier_names),
    }


def _text(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- Controls ----------------------------------------------------------------------------------


def merge_controls(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Combine two control sets so the stricter value of each control wins."""
    merged = {**base, "gate": dict(base.get("gate") or {})}
    for key, value in override.items():
        if key == "gate":
            for name, limit in value.items():
                if name == REQUIRED_CHECKS_KEY:
                    # Requiring more checks is stricter: the union, in the gate's order.
                    merged["gate"][name] = [
                        c for c in CHECK_NAMES if c in {*(merged["gate"].get(name) or []), *limit}
                    ]
                else:
                    merged["gate"][name] = _stricter_limit(name, merged["gate"].get(name), limit)
        elif key in ("required_approvals", "min_privacy_officer_approvals"):
            merged[key] = max(int(merged.get(key) or 0), int(value))
        elif key == "dp_required":
            merged[key] = bool(merged.get(key)) or bool(value)
        elif key in ("max_epsilon", "max_delta"):
            merged[key] = value if merged.get(key) is None else min(merged[key], value)
        elif key == "expiry_days":
            merged[key] = min(int(merged[key]), int(value)) if merged.get(key) else int(value)
        elif key in ("max_generation_attempts", "max_candidates", "synthesis_time_budget_s"):
            merged[key] = min(int(merged.get(key, value)), int(value))
        elif key == "min_training_rows":
            merged[key] = max(int(merged.get(key) or 0), int(value))
        elif key == "access_level":
            merged[key] = min(merged.get(key, value), value, key=ACCESS_LEVELS.index)
        elif key == "discoverable":
            # Hiding the card is stricter: a rule can hide a release, never reveal a hidden one.
            merged[key] = bool(merged.get(key, DEFAULT_DISCOVERABLE)) and bool(value)
        elif key == "team_steward_decides_access":
            # Officer-only decisions are stricter: a rule can take the delegation away, never grant it.
            merged[key] = bool(merged.get(key, DEFAULT_TEAM_STEWARD_DECIDES_ACCESS)) and bool(value)
    return merged


def _stricter_limit(name: str, current: float | None, new: float) -> float:
    if current is None:
        return new
    return max(current, new) if name.endswith("_min") else min(current, new)


def _tier_controls(policy: Policy, level: str, facts: Facts) -> dict[str, Any]:
    controls = {**policy.tiers[level], "gate": dict(policy.tiers[level].get("gate") or {})}
    controls["approver_roles"] = list(controls.get("approver_roles") or [])
    controls["access_level"] = facts.audience
    # Recorded explicitly in every snapshot (request.tier_controls), so the catalog and an evidence
    # package read what applied, not a default that a later version of the code might change.
    controls.setdefault("discoverable", DEFAULT_DISCOVERABLE)
    controls.setdefault("team_steward_decides_access", DEFAULT_TEAM_STEWARD_DECIDES_ACCESS)
    return controls


def _violations(controls: Mapping[str, Any], facts: Facts) -> list[FiredRule]:
    """Hard controls the request as filed does not meet: each makes it prohibited."""
    found = []
    limit = controls.get("max_epsilon")
    if controls.get("dp_required") and not facts.is_dp:
        bound = f" with epsilon <= {_text(float(limit))}" if limit is not None else ""
        if facts.kind == "federated_study":
            remedy = f"turn on client-level DP for the study{bound}"
            what = "the study"
        else:
            remedy = f"choose a DP synthesizer (named dp_*){bound}"
            what = facts.synthesizer or "the synthesizer"
        found.append(
            FiredRule(
                "control.dp_required",
                "prohibited",
                f"This request needs differential privacy, but {what} is not differentially private: "
                f"{remedy}, or change what made DP necessary (see the reasons above).",
            )
        )
    elif limit is not None and facts.is_dp and facts.epsilon is not None and facts.epsilon > limit:
        found.append(
            FiredRule(
                "control.max_epsilon",
                "prohibited",
                f"Epsilon {_text(float(facts.epsilon))} is above the maximum {_text(float(limit))} "
                f"this request allows: lower epsilon to {_text(float(limit))} or less.",
            )
        )
    delta_limit = controls.get("max_delta")
    if delta_limit is not None and facts.is_dp and facts.delta and facts.delta > delta_limit:
        found.append(
            FiredRule(
                "control.max_delta",
                "prohibited",
                f"Delta {_text(float(facts.delta))} is above the maximum {_text(float(delta_limit))} "
                f"this request allows: lower delta to {_text(float(delta_limit))} or less.",
            )
        )
    return found


# --- Evaluation --------------------------------------------------------------------------------


def evaluate(policy: Policy, facts: Facts) -> Assessment:
    """Tier a request: every rule that fires raises the tier and tightens the controls."""
    values = facts.values()
    hits = [rule for rule in policy.rules if matches(rule.when, values)]
    level = max((rule.tier for rule in hits), key=rank, default="low")
    controls = _tier_controls(policy, level, facts)
    for rule in hits:
        controls = merge_controls(controls, rule.controls)
    fired = [FiredRule(rule.id, rule.tier, render_message(rule.message, facts)) for rule in hits]
    violations = _violations(controls, facts)
    if violations:
        level = "prohibited"
        requirements = {k: controls[k] for k in ("dp_required", "max_epsilon", "max_delta") if k in controls}
        controls = {**_tier_controls(policy, level, facts), **requirements}
        fired.extend(violations)
    if not fired:
        fired.append(FiredRule("baseline", "low", render_message(policy.baseline_reason, facts)))
    return Assessment(level=level, fired=tuple(fired), controls=controls)


def suggest(policy: Policy, facts: Facts, *, dp_available: bool = True) -> list[Suggestion]:
    """Single changes that would lower the tier, lowest resulting tier first.

    Tried one at a time so each suggestion is something the requester can do on its own.
    """
    current = rank(evaluate(policy, facts).level)
    found: list[Suggestion] = []
    for change, alternative in _alternatives(facts, dp_available=dp_available):
        level = evaluate(policy, alternative).level
        if rank(level) < current:
            found.append(Suggestion(change, level))
    return sorted(found, key=lambda s: rank(s.level))


def _alternatives(facts: Facts, *, dp_available: bool) -> list[tuple[str, Facts]]:
    options: list[tuple[str, Facts]] = []
    if facts.audience != "internal":
        options.append(
            ("Choose the internal audience (your team only).", replace(facts, audience="internal"))
        )
    if facts.audience == "external":
        options.append(("Choose the organization audience.", replace(facts, audience="organization")))
    # A study becomes DP by client-level DP (_study_alternatives), not by choosing a synthesizer.
    options.extend(_study_alternatives(facts))
    if not facts.is_dp and facts.kind != "federated_study":
        note = "" if dp_available else " (none is installed yet; ask an administrator)"
        options.append(
            (
                f"Use a DP synthesizer (named dp_*) with epsilon 1{note}.",
                replace(facts, is_dp=True, epsilon=1.0),
            )
        )
    elif facts.epsilon is not None and facts.epsilon > 1:
        options.append(("Lower epsilon to 1.", replace(facts, epsilon=1.0)))
    options.extend(_column_alternatives(facts))
    lower = {"high": "medium", "medium": "low"}.get(facts.fidelity)
    if lower:
        options.append((f"Ask for {lower} fidelity.", replace(facts, fidelity=lower)))
    if facts.source_rows and facts.rows > facts.source_rows:
        # No figure: the exact source row count is for custodians (the pure engine cannot tell).
        options.append(("Request no more rows than the source has.", replace(facts, rows=facts.source_rows)))
    return options


def _study_alternatives(facts: Facts) -> list[tuple[str, Facts]]:
    """What a federated study could change about how it trains."""
    if facts.kind != "federated_study":
        return []
    options = []
    if not facts.secure_aggregation:
        change = "Use secure aggregation (the server sees only the sum of the sites' updates)."
        options.append((change, replace(facts, secure_aggregation=True)))
    if not facts.client_dp:
        options.append(
            ("Add client-level DP with epsilon 1.", replace(facts, client_dp=True, is_dp=True, epsilon=1.0))
        )
    return options


def _column_alternatives(facts: Facts) -> list[tuple[str, Facts]]:
    options = []
    groups = (
        ("direct identifier", facts.direct_identifier_names),
        ("quasi-identifier", facts.quasi_identifier_names),
        ("sensitive column", facts.sensitive_names),
    )
    total = len(facts.all_columns())
    for label, names in groups:
        for name in names:
            if total > 1:
                options.append((f"Drop {label} `{name}`.", facts.without_columns([name])))
        if len(names) > 1 and total > len(names):
            listed = ", ".join(f"`{n}`" for n in names)
            options.append((f"Drop the {label}s {listed}.", facts.without_columns(names)))
    return options
