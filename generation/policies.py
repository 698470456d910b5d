"""Rules that suggest a column's classification. Stewards review the suggestion.

These are name heuristics plus the profile's kind; value-pattern detection (SSN-, MRN-,
email-shaped values) deepens this in the intake issue.
"""

from __future__ import annotations

import re

from generation.choices import Classification, ColumnKind

_DIRECT = re.compile(
    r"(^|_)(name|first_?name|last_?name|surname|ssn|social_security|mrn|medical_record|email|"
    r"e_?mail|phone|telephone|mobile|address|street|patient_?id|nhs_?number|passport)($|_)"
)
_QUASI = re.compile(
    r"(^|_)(age|sex|gender|zip|zip_?code|postcode|postal|race|ethnicity|dob|birth|birth_?date|"
    r"date_?of_?birth|marital|county|city|state|sample_yr|year)($|_)"
)
_SENSITIVE = re.compile(
    r"(^|_)(death|died|diagnosis|dx|chapter|hiv|cancer|status|outcome|cens|fstat|"
    r"treatment|drug|psych|pregnan|genetic|mgus)($|_)"
)


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def suggest_classification(*, name: str, kind: str) -> str:
    normalized = _normalize(name)
    if kind == ColumnKind.IDENTIFIER or _DIRECT.search(normalized):
        return Classification.DIRECT_IDENTIFIER
    if _QUASI.search(normalized):
        return Classification.QUASI_IDENTIFIER
    if _SENSITIVE.search(normalized):
        return Classification.SENSITIVE
    return Classification.OTHER
