"""Rules about columns: suggested classifications (stewards review and sign off) and which column
may be declared the outcome of the train-on-synthetic test.

Value shapes (SSN, email, phone, MRN, personal names) and near-unique or free-text columns are
direct identifiers; postcodes, birth dates and demographic names are quasi-identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from core.roles import SEES_EXACT_STATISTICS, has_role
from generation.choices import Classification, ColumnKind


class DeclarationSource(models.TextChoices):
    """Where a column's declared domain came from. DP synthesis accepts only the first two."""

    STEWARD = "steward", "Declared by the steward"
    DP_ESTIMATE = "dp_estimate", "DP estimate (charged to the budget)"
    PROFILE_SUGGESTION = "profile_suggestion", "Read from the data (a suggestion, not a public declaration)"


# The fields of a declared domain: entering any of them makes the declaration the steward's.
DOMAIN_FIELDS = (
    "kind",
    "integer",
    "lower",
    "upper",
    "categories",
    "unit",
    "nullable",
    "decimals",
    "allowed_values",
)
# Numeric columns only: the precision values are recorded to, and (scores, codes) the only values
# the column takes. Releases are rounded and snapped to them (generation.synthesizers.shaping).
NUMERIC_ONLY_FIELDS = ("decimals", "allowed_values")
MAX_DECIMALS = 10
MAX_ALLOWED_VALUES = 1000

# Kept only because generation.api.serializers still imports (and re-exports) this name; the
# capability is core.roles.SEES_EXACT_STATISTICS.
CUSTODIANS = SEES_EXACT_STATISTICS
ROWS_ROUNDED_TO = 100
MIN_POPULATION_REASON = 20

_DIRECT = re.compile(
    r"(^|_)(name|first_?name|last_?name|full_?name|surname|ssn|social_security|mrn|medical_record|"
    r"email|e_?mail|phone|telephone|mobile|fax|address|street|patient_?id|nhs_?number|passport|"
    r"license|licence|account|ip_?address|url)($|_)"
)
_QUASI = re.compile(
    r"(^|_)(age|sex|gender|zip|zip_?code|postcode|postal|race|ethnicity|dob|birth|birth_?date|"
    r"date_?of_?birth|marital|county|city|state|sample_yr|year|admission_?date|discharge_?date)($|_)"
)
# Outcomes, diagnoses and conditions a steward would call sensitive; a token may carry a number
# ("dx2", "icd10"). One list for the name rule (generation.intake adds rules on values).
_SENSITIVE = re.compile(
    r"(^|_)(dead|died|death|mortality|mort|deceased|vital_?status|survival|surv|event|events|relapse|"
    r"recurrence|recur|readmission|readmit|progression|censored|censor|cens|fstat|status|outcome|"
    r"diag|diagnosis|diagnoses|dx|icd|icd_?\d+|chapter|disease|comorbidity|comorbidities|condition|"
    r"syndrome|disorder|stage|grade|tumou?r|cancer|malignancy|metastasis|mgus|infection|sepsis|stroke|"
    r"diabetes|hypertension|copd|aids|hiv|symptom|symptoms|homo|hemo|hemophilia|haemophilia|drug|drugs|"
    r"treatment|sexual|pregnan|pregnancy|pregnant|psych|psychiatric|addiction|alcohol|smoking|"
    r"substance|genetic|dementia|cirrhosis|hepatitis|asthma|chf|ckd|depression|schizophrenia|bipolar|"
    r"transplant|dnr|dnar|dnacpr)\d*($|_)"
)
# Names written without separators, as exports abbreviate them: an outcome at the end ("hospdead",
# "icudeath", "inhospmortality") or a diagnosis prefix at the start ("dzgroup", "dxcode", "diagmain";
# not "diagonal").
_RUN_TOGETHER = re.compile(
    r"(^|_)([a-z]+(dead|died|death|deaths|mortality|deceased)|(dx|dz|diag(?!on))[a-z]+)\d*($|_)"
)
# Names of record or subject keys ("id", "subject_id", "pid", "patient_no", "idnr"...).
_ID_NAME = re.compile(r"(^|_)(id|ids|pid|sid|uid|idnr|key|subject|subject_?id|record_?id|case_?id|\w*_id)$")
_DIRECT_PATTERNS = {
    "ssn": "SSN-shaped",
    "email": "email addresses",
    "phone": "phone numbers",
    "mrn": "MRN-shaped",
    "person_name": "personal names",
}


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def sees_exact_figures(user: object) -> bool:
    """Whether `user` may see a source's exact row counts and profile statistics."""
    return has_role(user, *SEES_EXACT_STATISTICS)


def about(count: int | None, *, step: int = ROWS_ROUNDED_TO) -> int | None:
    """A count rounded half up to the nearest `step`, the figure non-custodians see."""
    return None if count is None else (int(count) + step // 2) // step * step


def looks_like_id_name(name: str) -> bool:
    """Whether a column is named like a record or subject key ("id", "subject_id", "pid")."""
    return bool(_ID_NAME.search(_normalize(name)))


def suggest_classification(
    *, name: str, kind: str, patterns: list[str] | None = None, unique_per_row: bool = False
) -> tuple[str, str]:
    """(classification, reason in plain words)."""
    normalized = _normalize(name)
    shapes = [label for key, label in _DIRECT_PATTERNS.items() if key in (patterns or [])]
    if shapes:
        return Classification.DIRECT_IDENTIFIER, f"Values look like {', '.join(shapes)}."
    if unique_per_row and looks_like_id_name(name):
        return Classification.DIRECT_IDENTIFIER, "Named like an identifier and unique per row."
    if kind == ColumnKind.IDENTIFIER:
        return Classification.DIRECT_IDENTIFIER, "Nearly every value is unique, like an identifier."
    if kind == ColumnKind.TEXT:
        return Classification.DIRECT_IDENTIFIER, "Free text can carry names and identifiers."
    if _DIRECT.search(normalized):
        return Classification.DIRECT_IDENTIFIER, "The column name suggests an identifier."
    if "postcode" in (patterns or []):
        return Classification.QUASI_IDENTIFIER, "Values look like postcodes."
    if _QUASI.search(normalized):
        return (
            Classification.QUASI_IDENTIFIER,
            "The column name suggests a demographic or date quasi-identifier.",
        )
    if kind == ColumnKind.DATETIME:
        # HIPAA's Safe Harbor lists every element of a date tied to a person but the year (admission,
        # discharge, sample, death): an `admit_date` was left as "other", outside the attacks' columns.
        return (
            Classification.QUASI_IDENTIFIER,
            "Dates tied to a person (admission, discharge, a sample) help single them out.",
        )
    if _SENSITIVE.search(normalized) or _RUN_TOGETHER.search(normalized):
        return Classification.SENSITIVE, "The column name suggests an outcome, diagnosis or health condition."
    return Classification.OTHER, "No identifying pattern found."


# --- The declared outcome ------------------------------------------------------------------------

# Kinds whose declared domain can say "two values"; dates, free text and identifiers never can.
_OUTCOME_KINDS = (ColumnKind.BOOLEAN, ColumnKind.CATEGORICAL, ColumnKind.NUMERIC)


def declares_two_values(*, kind: str, declared: Mapping[str, Any]) -> bool:
    """Whether the steward's declaration alone says the column takes exactly two values.

    Read from the declaration, never the data: the web process does not read source rows, and
    conformance holds the release to the declared domain, so this is the domain the test sees.
    """
    if kind not in _OUTCOME_KINDS:
        return False
    categories = declared.get("categories")
    if categories:
        return len(categories) == 2
    if kind == ColumnKind.BOOLEAN:
        return True
    # A whole-number column bounded to 0..1 is a 0/1 flag stored as numbers (missing values make
    # pandas read such a column as floats, so the intake calls it numeric, not boolean).
    return bool(declared.get("integer")) and (declared.get("lower"), declared.get("upper")) == (0, 1)


def outcome_refusal(*, name: str, kind: str, classification: str, declared: Mapping[str, Any]) -> str:
    """Why this column cannot be the declared outcome, in words that say what to do ("" if it can)."""
    if classification == Classification.DIRECT_IDENTIFIER:
        return (
            f"`{name}` is classified as a direct identifier and is never synthesized, so it cannot be "
            "the outcome; clear its outcome flag or change its classification."
        )
    if not declares_two_values(kind=kind, declared=declared):
        return (
            f"`{name}` cannot be the outcome: the train-on-synthetic test predicts a column with "
            f"exactly two values, and the declared domain of `{name}` is not two values. Choose a "
            "yes/no column, or declare exactly two categories for it (a whole-number column with "
            "bounds 0 and 1 also qualifies)."
        )
    return ""


def second_outcome_refusal(*, flagged: list[str], previously: set[str]) -> str:
    """The at-most-one rule: a new outcome is refused, naming the column that already holds it.

    Refused rather than moved, so the previous outcome never changes without the steward saying so
    ("" when at most one column is flagged).
    """
    if len(flagged) <= 1:
        return ""
    holders = [n for n in flagged if n in previously]
    newcomers = [n for n in flagged if n not in previously]
    if holders and newcomers:
        return (
            f"`{holders[0]}` is already the declared outcome, and a dataset has at most one. To make "
            f"`{newcomers[0]}` the outcome, clear the outcome flag of `{holders[0]}` in the same change."
        )
    marked = ", ".join(f"`{n}`" for n in flagged)
    return f"Only one column can be the outcome, and {marked} are all marked; keep one."


# --- Declarations copied from the data -------------------------------------------------------------


def declaration_source(declared: Mapping[str, Any]) -> str:
    # A declaration without a source predates sources: it was pre-filled from the data.
    return str(declared.get("source") or DeclarationSource.PROFILE_SUGGESTION)


# Declarations a DP synthesizer may be fed: written by a person, or estimated under DP and charged.
# A profile suggestion is read from the data, so a domain taken from it moves when one record is
# added or removed; snapshots signed off before sources existed count as suggestions.
DP_SAFE_SOURCES = frozenset({DeclarationSource.STEWARD.value, DeclarationSource.DP_ESTIMATE.value})


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


def _same_bound(declared: Any, observed: Any) -> bool:
    if declared is None or observed is None:
        return False
    try:
        if isinstance(declared, str) or isinstance(observed, str):
            from pandas import Timestamp

            return bool(Timestamp(str(declared)) == Timestamp(str(observed)))
        return float(declared) == float(observed)
    except (TypeError, ValueError):
        return False


def declaration_warnings(
    *, name: str, classification: str, declared: Mapping[str, Any], stats: Mapping[str, Any]
) -> list[dict[str, str]]:
    """Signs that a declaration was read from the data rather than from public knowledge.

    For custodians only: the messages compare the declaration with the data's extremes and
    category list. Direct identifiers are never synthesized, so they get none.
    """
    if classification == Classification.DIRECT_IDENTIFIER:
        return []
    if declaration_source(declared) == DeclarationSource.PROFILE_SUGGESTION:
        return [
            _warning(
                name,
                "profile_suggestion",
                f"`{name}`: the declared domain was read from the data (a suggestion, not a public "
                "declaration); DP synthesis refuses it. Enter the public range or categories, or "
                "estimate the bounds with differential privacy.",
            )
        ]
    found = []
    for key, stat, word in (("lower", "min", "smallest"), ("upper", "max", "largest")):
        if _same_bound(declared.get(key), stats.get(stat)):
            found.append(
                _warning(
                    name,
                    f"{key}_equals_observed",
                    f"`{name}`: the declared {key} bound equals the {word} value in the data, a sign it "
                    "was copied from the data; declare a public range (for example a clinical "
                    "reference range) instead.",
                )
            )
    observed = stats.get("categories_at_least_k")
    if (
        declared.get("categories")
        and observed
        and sorted(map(str, declared["categories"])) == sorted(observed)
    ):
        found.append(
            _warning(
                name,
                "categories_equal_observed",
                f"`{name}`: the declared categories are exactly the categories seen in the data, a sign "
                "they were copied from it; declare the categories the column can take (from its "
                "definition or coding scheme) instead.",
            )
        )
    return found


def _warning(column: str, code: str, message: str) -> dict[str, str]:
    return {"column": column, "code": code, "message": message}
