"""Which columns a DP synthesizer may run on: those whose domain was declared, not read from data.

A DP guarantee holds only if everything the mechanisms are told about a column (kind, bounds,
integer flag, categories) is fixed independently of the records. The profile's suggestions are
read from the data (min/max, frequent categories), so a domain taken from them moves when one
record is added or removed. Each signed-off column spec records where its declaration came from
(`source`): a steward, a DP estimate charged to the ledger, or a profile suggestion. Specs signed
off before `source` existed count as profile suggestions: nothing says a person checked them.

Pure functions over column specs (dicts), so the request form, the API, approval and the job all
apply the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STEWARD = "steward"
DP_ESTIMATE = "dp_estimate"
PROFILE_SUGGESTION = "profile_suggestion"
# Declarations a DP synthesizer may be fed: written by a person, or estimated under DP and charged.
DP_SAFE_SOURCES = frozenset({STEWARD, DP_ESTIMATE})


def declaration_source(spec: Mapping[str, Any]) -> str:
    """Where a column's declared domain came from; absent (older snapshots) = profile suggestion."""
    source = spec.get("source")
    if isinstance(source, str) and source:
        return source
    declared = spec.get("declared")
    if isinstance(declared, Mapping) and isinstance(declared.get("source"), str) and declared["source"]:
        return str(declared["source"])
    return PROFILE_SUGGESTION


def undeclared_dp_columns(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the columns (in the order given) whose domain is not from a steward or a DP estimate."""
    return [str(spec.get("name")) for spec in specs if declaration_source(spec) not in DP_SAFE_SOURCES]


def dp_domain_refusal(specs: Iterable[Mapping[str, Any]]) -> str | None:
    """Why a DP synthesizer may not run on these columns, or None when every domain is declared.

    Names columns only, never values (the message is shown to requesters and audited)."""
    missing = undeclared_dp_columns(specs)
    if not missing:
        return None
    listed = ", ".join(f"`{name}`" for name in missing)
    plural = "s" if len(missing) > 1 else ""
    return (
        f"Differential privacy needs each column's domain declared independently of the data, but "
        f"the domain of column{plural} {listed} is only a suggestion read from the data (its "
        "bounds or categories would change with the records, which breaks the guarantee). Ask the "
        "data steward to declare the domain of "
        f"{'these columns' if plural else 'this column'} (kind, bounds, whole-number flag, "
        "categories) and sign the dataset off again, or run a DP domain estimate from the "
        "dataset's review page; or remove the column from the request, or choose a non-DP "
        "synthesizer."
    )
