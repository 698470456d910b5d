"""Rules that suggest a column's classification, with the reason. Stewards review and sign off.

Value shapes (SSN, email, phone, MRN, personal names) and near-unique or free-text columns are
direct identifiers; postcodes, birth dates and demographic names are quasi-identifiers.
"""

from __future__ import annotations

import re

from generation.choices import Classification, ColumnKind

_DIRECT = re.compile(
    r"(^|_)(name|first_?name|last_?name|full_?name|surname|ssn|social_security|mrn|medical_record|"
    r"email|e_?mail|phone|telephone|mobile|fax|address|street|patient_?id|nhs_?number|passport|"
    r"license|licence|account|ip_?address|url)($|_)"
)
_QUASI = re.compile(
    r"(^|_)(age|sex|gender|zip|zip_?code|postcode|postal|race|ethnicity|dob|birth|birth_?date|"
    r"date_?of_?birth|marital|county|city|state|sample_yr|year|admission_?date|discharge_?date)($|_)"
)
_SENSITIVE = re.compile(
    r"(^|_)(death|died|diagnosis|dx|chapter|hiv|cancer|status|outcome|cens|fstat|"
    r"treatment|drug|psych|pregnan|genetic|mgus)($|_)"
)
_DIRECT_PATTERNS = {
    "ssn": "SSN-shaped",
    "email": "email addresses",
    "phone": "phone numbers",
    "mrn": "MRN-shaped",
    "person_name": "personal names",
}


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def suggest_classification(*, name: str, kind: str, patterns: list[str] | None = None) -> tuple[str, str]:
    """(classification, reason in plain words)."""
    normalized = _normalize(name)
    shapes = [label for key, label in _DIRECT_PATTERNS.items() if key in (patterns or [])]
    if shapes:
        return Classification.DIRECT_IDENTIFIER, f"Values look like {', '.join(shapes)}."
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
    if _SENSITIVE.search(normalized):
        return Classification.SENSITIVE, "The column name suggests a health outcome or condition."
    return Classification.OTHER, "No identifying pattern found."
