"""Public, hand-written declarations of the shared clinical tables the demo and tests use.

Written from what is publicly known about each study and about clinical measurement ranges, never
read from the data: a differentially private release may depend only on metadata like this. Each
entry is one column's change for `dataset_update_columns` (what a steward would type).
"""

from __future__ import annotations

from typing import Any

# ICD-9 chapter names as the Mayo flchain study labels causes of death (all chapters, not only the
# ones seen in the file: a rare chapter must not appear or vanish with one record).
ICD9_CHAPTERS = [
    "Blood",
    "Circulatory",
    "Congenital",
    "Digestive",
    "Endocrine",
    "External Causes",
    "Genitourinary",
    "Ill Defined",
    "Infectious",
    "Injury and Poisoning",
    "Mental",
    "Musculoskeletal",
    "Neoplasms",
    "Nervous",
    "Perinatal",
    "Pregnancy",
    "Respiratory",
    "Skin",
]

FLCHAIN: list[dict[str, Any]] = [
    # Olmsted County residents aged 50 and over; a human age range beyond the study's.
    {"name": "age", "lower": 18, "upper": 110, "integer": True, "unit": "years"},
    {"name": "sex", "categories": ["F", "M"]},
    # Serum free light chains, mg/L: reference ~3.3-19.4 (kappa) and 5.7-26.3 (lambda); myeloma far above.
    {"name": "kappa", "lower": 0, "upper": 100, "unit": "mg/L"},
    {"name": "lambda", "lower": 0, "upper": 100, "unit": "mg/L"},
    # Serum creatinine, mg/dL: physiological range up to end-stage renal disease.
    {"name": "creatinine", "lower": 0, "upper": 15, "unit": "mg/dL"},
    # Follow-up in days: the study followed people for up to about 15 years.
    {"name": "futime", "lower": 0, "upper": 6000, "integer": True, "unit": "days"},
    {"name": "death", "categories": ["0", "1"]},
    # FLC group: deciles of the total free light chain, 1..10 by construction.
    {"name": "flc.grp", "lower": 1, "upper": 10, "integer": True},
    {"name": "mgus", "categories": ["no", "yes"]},
    # Samples were collected 1995-2003; a wider public window.
    {"name": "sample.yr", "lower": 1990, "upper": 2010, "integer": True, "unit": "year"},
    {"name": "chapter", "categories": ICD9_CHAPTERS},
]


def declarations_for(columns: list[str], table: list[dict[str, Any]] = FLCHAIN) -> list[dict[str, Any]]:
    """The declarations of the named columns that the table has."""
    wanted = set(columns)
    return [dict(item) for item in table if item["name"] in wanted]
