"""Parse and validate a tiering rule set written in YAML.

Every problem is reported with the line it is on and the path of the offending field
(`rules[3].when.all[0].fact`), so an administrator can fix a draft in the browser; nothing here
raises anything but PolicyError, whatever the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from approvals.policies.engine import (
    ACCESS_LEVELS,
    COMPARATORS,
    DEFAULT_DISCOVERABLE,
    DEFAULT_TEAM_STEWARD_DECIDES_ACCESS,
    FACTS,
    LEVELS,
    MESSAGE_EXTRAS,
    PLACEHOLDER,
    Policy,
    Rule,
)
from core.roles import REVIEWS_REQUESTS, Role
from validation.gate import CHECK_NAMES, REQUIRED_CHECKS_KEY

SCHEMA_VERSION = 1
MAX_SOURCE_CHARS = 200_000
MAX_DEPTH = 24
_RULE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# A `text` fact's operand (a model family's name): what the registries name things with.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_TOP_KEYS = {"schema", "name", "baseline_reason", "tiers", "rules"}
_TIER_KEYS = {
    "required_approvals",
    "min_privacy_officer_approvals",
    "approver_roles",
    "dp_required",
    "max_epsilon",
    "gate",
    "expiry_days",
}
# Optional, so rule sets published before they existed stay valid (engine.DEFAULT_MAX_ATTEMPTS;
# no max_delta means no cap beyond the ledger's; no min_training_rows means no minimum; no
# discoverable means every member finds the card; no team_steward_decides_access means officers only).
_OPTIONAL_TIER_KEYS = {
    "max_generation_attempts",
    "max_delta",
    "max_candidates",
    "synthesis_time_budget_s",
    "min_training_rows",
    "discoverable",
    "team_steward_decides_access",
}
# A bound that catches a mistyped minimum (extra zeros) rather than refusing every dataset.
MAX_MIN_TRAINING_ROWS = 10_000_000
_RULE_KEYS = {"id", "when", "tier", "message", "controls"}
# Rules may tighten these; who may approve is a property of the tier alone.
_OVERRIDE_KEYS = (_TIER_KEYS | _OPTIONAL_TIER_KEYS) - {"approver_roles"} | {"access_level"}
_REQUIRED_GATE = ("column_shape_min", "exact_copy_rate_max")


@dataclass(frozen=True)
class Problem:
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line else ""
        return f"{where}{self.path or 'document'}: {self.message}"


class PolicyError(Exception):
    """The text is not a valid rule set; `problems` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def parse_policy(text: str) -> Policy:
    """A validated Policy from YAML text, or PolicyError listing every problem found."""
    if len(text) > MAX_SOURCE_CHARS:
        raise PolicyError([Problem(None, "", f"the rule set is over {MAX_SOURCE_CHARS:,} characters")])
    node, data = _load(text)
    checker = _Checker(_line_index(node))
    checker.document(data)
    if checker.problems:
        raise PolicyError(checker.problems)
    return Policy(
        name=str(data["name"]),
        tiers={level: dict(data["tiers"][level]) for level in LEVELS},
        rules=tuple(
            Rule(
                id=r["id"],
                when=r["when"],
                tier=r["tier"],
                message=r["message"],
                controls=r.get("controls") or {},
            )
            for r in data["rules"]
        ),
        baseline_reason=str(data["baseline_reason"]),
    )


def _load(text: str) -> tuple[yaml.Node | None, Any]:
    try:
        _prescan(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise PolicyError([Problem(line, "", f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(None, "", f"not valid YAML: {exc}")]) from None
    except RecursionError:
        raise PolicyError([Problem(None, "", "not valid YAML: nested too deeply")]) from None
    duplicates = _duplicate_keys(node, "")
    if duplicates:
        raise PolicyError(duplicates)
    return node, data


def _prescan(text: str) -> None:
    """Refuse, before anything is built, what a policy never needs and what makes parsing costly:
    anchors and aliases (a few lines can expand into a huge tree, a "billion laughs") and deep
    nesting (PyYAML slows down and finally recurses out)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise PolicyError([Problem(line, "", "YAML anchors and aliases (& and *) are not allowed")])
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise PolicyError([Problem(line, "", f"nested more than {MAX_DEPTH} levels deep")])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _duplicate_keys(node: yaml.Node | None, path: str) -> list[Problem]:
    """PyYAML keeps the last of two equal keys silently; in a policy that hides a rule."""
    found: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                found.append(Problem(key.start_mark.line + 1, _join(path, name), "key appears twice"))
            seen.add(name)
            found.extend(_duplicate_keys(value, _join(path, name)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, f"{path}[{i}]"))
    return found


def _line_index(
    node: yaml.Node | None, path: str = "", index: dict[str, int] | None = None
) -> dict[str, int]:
    """Map each field path to the line it starts on."""
    index = {} if index is None else index
    if node is None:
        return index
    index.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = _join(path, str(key.value))
            index[child] = key.start_mark.line + 1
            _line_index(value, child, index)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, f"{path}[{i}]", index)
    return index


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


class _Checker:
    """Collects every problem instead of stopping at the first (administrators fix them in one go)."""

    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
            line = self.lines.get(probe)
        self.problems.append(Problem(line, path, message))

    def mapping(self, value: Any, path: str, allowed: set[str], required: set[str]) -> bool:
        if not isinstance(value, dict):
            self.fail(path, "must be a mapping of keys to values")
            return False
        for key in sorted(set(map(str, value)) - allowed):
            self.fail(_join(path, key), f"unknown key; expected one of {', '.join(sorted(allowed))}")
        for key in sorted(required - set(map(str, value))):
            self.fail(path, f"missing `{key}`")
        return True

    # --- document ------------------------------------------------------------------------------

    def document(self, data: Any) -> None:
        if not self.mapping(data, "", _TOP_KEYS, _TOP_KEYS):
            return
        if data.get("schema") != SCHEMA_VERSION:
            self.fail("schema", f"must be {SCHEMA_VERSION}")
        for key in ("name", "baseline_reason"):
            if key in data and not (isinstance(data[key], str) and data[key].strip()):
                self.fail(key, "must be non-empty text")
        if isinstance(data.get("baseline_reason"), str):
            self.placeholders(data["baseline_reason"], "baseline_reason")
        if "tiers" in data:
            self.tiers(data["tiers"])
        if "rules" in data:
            self.rules(data["rules"])

    def tiers(self, tiers: Any) -> None:
        if not self.mapping(tiers, "tiers", set(LEVELS), set(LEVELS)):
            return
        for level in LEVELS:
            if level in tiers:
                self.tier(tiers[level], f"tiers.{level}", level)
        if all(isinstance(tiers.get(level), dict) for level in LEVELS):
            self.monotonic(tiers)

    def tier(self, tier: Any, path: str, level: str) -> None:
        if not self.mapping(tier, path, _TIER_KEYS | _OPTIONAL_TIER_KEYS, _TIER_KEYS):
            return
        self.controls(tier, path, keys=_TIER_KEYS | _OPTIONAL_TIER_KEYS)
        if level == "prohibited":
            return
        approvals = tier.get("required_approvals")
        floor = 2 if level == "high" else 1
        if isinstance(approvals, int) and approvals < floor:
            self.fail(f"{path}.required_approvals", f"{level} tier needs at least {floor} approval(s)")
        officers = tier.get("min_privacy_officer_approvals")
        if isinstance(officers, int) and officers < 1:
            self.fail(
                f"{path}.min_privacy_officer_approvals", "at least one approver must be a privacy officer"
            )
        if isinstance(officers, int) and isinstance(approvals, int) and officers > approvals:
            self.fail(f"{path}.min_privacy_officer_approvals", "cannot exceed required_approvals")
        roles = tier.get("approver_roles")
        if isinstance(roles, list) and Role.PRIVACY_OFFICER not in roles:
            self.fail(f"{path}.approver_roles", "must include privacy_officer")
        gate = tier.get("gate")
        if isinstance(gate, dict):
            for name in _REQUIRED_GATE:
                if name not in gate:
                    self.fail(f"{path}.gate", f"missing `{name}` (the release gate reads it)")
        expiry = tier.get("expiry_days")
        if isinstance(expiry, int) and expiry < 1:
            self.fail(f"{path}.expiry_days", "must be at least 1 day")

    def monotonic(self, tiers: Mapping[str, Any]) -> None:
        """A riskier tier may never ask for less than a safer one."""
        graded = LEVELS[:-1]
        for lower, higher in zip(graded, graded[1:], strict=False):
            a, b = tiers[lower], tiers[higher]
            if _ints(a, b, "required_approvals") and b["required_approvals"] < a["required_approvals"]:
                self.fail(f"tiers.{higher}.required_approvals", f"must be at least the {lower} tier's")
            if _ints(a, b, "expiry_days") and b["expiry_days"] > a["expiry_days"]:
                self.fail(f"tiers.{higher}.expiry_days", f"must be at most the {lower} tier's")
            if _ints(a, b, "max_generation_attempts") and (
                b["max_generation_attempts"] > a["max_generation_attempts"]
            ):
                self.fail(f"tiers.{higher}.max_generation_attempts", f"must be at most the {lower} tier's")
            if _ints(a, b, "max_candidates") and b["max_candidates"] > a["max_candidates"]:
                self.fail(f"tiers.{higher}.max_candidates", f"must be at most the {lower} tier's")
            if _numbers(a, b, "max_delta") and b["max_delta"] > a["max_delta"]:
                self.fail(f"tiers.{higher}.max_delta", f"must be at most the {lower} tier's")
            if _ints(a, b, "min_training_rows") and b["min_training_rows"] < a["min_training_rows"]:
                self.fail(f"tiers.{higher}.min_training_rows", f"must be at least the {lower} tier's")
            # Both flags are stricter when false; an absent flag counts as its default.
            for flag, default in (
                ("discoverable", DEFAULT_DISCOVERABLE),
                ("team_steward_decides_access", DEFAULT_TEAM_STEWARD_DECIDES_ACCESS),
            ):
                low, high = a.get(flag, default), b.get(flag, default)
                if isinstance(low, bool) and isinstance(high, bool) and high and not low:
                    self.fail(f"tiers.{higher}.{flag}", f"cannot be true when the {lower} tier's is false")

    def controls(self, controls: Any, path: str, *, keys: set[str]) -> None:
        checks = {
            "required_approvals": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10,
            "min_privacy_officer_approvals": lambda v: (
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10
            ),
            "dp_required": lambda v: isinstance(v, bool),
            "max_epsilon": lambda v: v is None or (_is_number(v) and 0 < v <= 100),
            "max_delta": lambda v: v is None or (_is_number(v) and 0 < v <= 0.001),
            "expiry_days": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3650,
            "access_level": lambda v: v in ACCESS_LEVELS,
            "max_generation_attempts": lambda v: (
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 20
            ),
            "max_candidates": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10,
            "synthesis_time_budget_s": lambda v: (
                isinstance(v, int) and not isinstance(v, bool) and 10 <= v <= 14400
            ),
            "min_training_rows": lambda v: (
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_MIN_TRAINING_ROWS
            ),
            "discoverable": lambda v: isinstance(v, bool),
            "team_steward_decides_access": lambda v: isinstance(v, bool),
        }
        expected = {
            "required_approvals": "a whole number from 0 to 10",
            "min_privacy_officer_approvals": "a whole number from 0 to 10",
            "dp_required": "true or false",
            "max_epsilon": "a number above 0 and at most 100, or null",
            "max_delta": "a number above 0 and at most 0.001 (write it with a decimal point, as 1.0e-9), or null",
            "expiry_days": "a whole number of days from 0 to 3650",
            "access_level": f"one of {', '.join(ACCESS_LEVELS)}",
            "max_generation_attempts": "a whole number from 0 to 20",
            "max_candidates": "a whole number of bake-off candidates from 1 to 10",
            "synthesis_time_budget_s": "a whole number of seconds from 10 to 14400",
            "min_training_rows": f"a whole number of rows from 0 to {MAX_MIN_TRAINING_ROWS:,}",
            # YAML reads yes/no/on/off as booleans too, but "true" in quotes is text: say so.
            "discoverable": "true or false (unquoted)",
            "team_steward_decides_access": "true or false (unquoted)",
        }
        for key, value in controls.items():
            if key not in keys:
                continue
            if key == "gate":
                self.gate(value, f"{path}.gate")
            elif key == "approver_roles":
                self.roles(value, f"{path}.approver_roles")
            elif not checks[key](value):
                self.fail(f"{path}.{key}", f"must be {expected[key]}")

    def gate(self, gate: Any, path: str) -> None:
        if not isinstance(gate, dict):
            self.fail(path, "must be a mapping of threshold names to numbers")
            return
        for name, value in gate.items():
            if name == REQUIRED_CHECKS_KEY:
                # The checks that must run at this tier (validation.gate): a list of check names.
                if not (isinstance(value, list) and all(v in CHECK_NAMES for v in value)):
                    self.fail(
                        f"{path}.{name}", f"must be a list of gate check names ({', '.join(CHECK_NAMES)})"
                    )
            elif not (isinstance(name, str) and name.endswith(("_min", "_max"))):
                self.fail(f"{path}.{name}", "threshold names end in _min or _max (which way is stricter)")
            elif not (_is_number(value) and 0 <= value <= 1):
                self.fail(f"{path}.{name}", "must be a number from 0 to 1")

    def roles(self, roles: Any, path: str) -> None:
        if not isinstance(roles, list):
            self.fail(path, "must be a list of roles")
            return
        for i, role in enumerate(roles):
            if role not in REVIEWS_REQUESTS:
                self.fail(f"{path}[{i}]", "reviewers are privacy_officer or data_steward")

    # --- rules ---------------------------------------------------------------------------------

    def rules(self, rules: Any) -> None:
        if not isinstance(rules, list):
            self.fail("rules", "must be a list of rules")
            return
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            path = f"rules[{i}]"
            if not self.mapping(rule, path, _RULE_KEYS, _RULE_KEYS - {"controls"}):
                continue
            rule_id = rule.get("id")
            if not (isinstance(rule_id, str) and _RULE_ID.match(rule_id)):
                self.fail(f"{path}.id", "must be lower_snake_case, starting with a letter")
            elif rule_id in seen:
                self.fail(f"{path}.id", f"`{rule_id}` is used by an earlier rule")
            seen.add(str(rule_id))
            if "tier" in rule and rule["tier"] not in LEVELS:
                self.fail(f"{path}.tier", f"must be one of {', '.join(LEVELS)}")
            message = rule.get("message")
            if "message" in rule and not (isinstance(message, str) and message.strip()):
                self.fail(f"{path}.message", "must be non-empty text (it is the reason users read)")
            elif isinstance(message, str):
                self.placeholders(message, f"{path}.message")
            if "when" in rule:
                self.condition(rule["when"], f"{path}.when")
            if "controls" in rule and self.mapping(
                rule["controls"], f"{path}.controls", _OVERRIDE_KEYS, set()
            ):
                self.controls(rule["controls"], f"{path}.controls", keys=_OVERRIDE_KEYS)

    def placeholders(self, message: str, path: str) -> None:
        known = set(FACTS) | set(MESSAGE_EXTRAS)
        for name in PLACEHOLDER.findall(message):
            if name not in known:
                self.fail(path, f"unknown placeholder {{{name}}}; use one of {', '.join(sorted(known))}")

    def condition(self, cond: Any, path: str, depth: int = 0) -> None:
        if depth > 8:
            self.fail(path, "conditions nest too deeply (8 levels at most)")
            return
        if not isinstance(cond, dict) or not cond:
            self.fail(
                path,
                "must be a condition: {fact: ..., <operator>: ...}, {all: [...]}, {any: [...]} or {not: ...}",
            )
            return
        groups = [k for k in ("all", "any", "not") if k in cond]
        if groups:
            self.group(cond, path, groups, depth)
        else:
            self.leaf(cond, path)

    def group(self, cond: dict[str, Any], path: str, groups: list[str], depth: int) -> None:
        if len(cond) != 1:
            self.fail(path, f"`{groups[0]}` must be the only key of its condition")
            return
        key = groups[0]
        inner = cond[key]
        if key == "not":
            self.condition(inner, f"{path}.not", depth + 1)
        elif not isinstance(inner, list) or not inner:
            self.fail(f"{path}.{key}", "must be a non-empty list of conditions")
        else:
            for i, item in enumerate(inner):
                self.condition(item, f"{path}.{key}[{i}]", depth + 1)

    def leaf(self, cond: dict[str, Any], path: str) -> None:
        fact = cond.get("fact")
        if fact not in FACTS:
            self.fail(f"{path}.fact", f"unknown fact {fact!r}; known facts: {', '.join(FACTS)}")
            return
        ops = [k for k in cond if k != "fact"]
        if len(ops) != 1:
            self.fail(path, f"give exactly one operator: {', '.join((*COMPARATORS, 'unknown'))}")
            return
        op = ops[0]
        if op == "unknown":
            if not isinstance(cond[op], bool):
                self.fail(f"{path}.unknown", "must be true or false")
            elif not FACTS[fact].nullable:
                self.fail(f"{path}.unknown", f"`{fact}` is always known")
            return
        if op not in COMPARATORS:
            self.fail(f"{path}.{op}", f"unknown operator; use one of {', '.join((*COMPARATORS, 'unknown'))}")
            return
        self.operand(fact, op, cond[op], f"{path}.{op}")

    def operand(self, fact: str, op: str, value: Any, path: str) -> None:
        spec = FACTS[fact]
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.fail(path, "must be a non-empty list")
                return
            for i, item in enumerate(value):
                self.scalar(spec, fact, item, f"{path}[{i}]")
            return
        if op in ("gt", "gte", "lt", "lte") and spec.kind not in ("int", "number"):
            self.fail(path, f"`{fact}` is not a number; compare it with eq, ne, in or not_in")
            return
        self.scalar(spec, fact, value, path)

    def scalar(self, spec: Any, fact: str, value: Any, path: str) -> None:
        if spec.kind == "choice" and value not in spec.choices:
            self.fail(path, f"`{fact}` is one of {', '.join(spec.choices)}")
        elif spec.kind == "bool" and not isinstance(value, bool):
            self.fail(path, f"`{fact}` is true or false")
        elif spec.kind in ("int", "number") and not _is_number(value):
            self.fail(path, f"`{fact}` is a number")
        elif spec.kind == "text" and not (isinstance(value, str) and _NAME.fullmatch(value)):
            self.fail(path, f"`{fact}` is a name in lower case, such as logistic_regression")


def _ints(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> bool:
    return all(isinstance(x.get(key), int) and not isinstance(x.get(key), bool) for x in (a, b))


def _numbers(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> bool:
    return all(_is_number(x.get(key)) for x in (a, b))
