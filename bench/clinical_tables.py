"""A generated ICU table with what makes real clinical tables hard, and a steward's declarations for it.

The issue's acceptance is checked on hospital tables the project does not have; the shared tables are
small and tidy. This script writes a table with the traits those hospital tables have, so that a run
on one can be repeated from a clone (the public tables used beside it, SUPPORT2 and Framingham, are
downloads and are not committed):

- a rare binary outcome (`died_30d`, about 4-5%) driven by age, lactate, coma score, ventilation and pH;
- a diagnosis column of 361 ICD-10-shaped codes with a Zipf-like spread (most codes under 5 rows);
- coded ordinals: NYHA class 1-4 (numbers), ASA class I-V (text), Glasgow coma score 3-15 (mostly 15);
- skewed labs recorded to fixed decimals (lactate, creatinine, white cells; lognormal);
- a blood-gas panel (pH, pCO2, pO2, bicarbonate) missing as a block in about 40% of rows, less often
  for the sicker; a paired blood pressure missing together; stray missing cells in two labs;
- a unique patient number (a direct identifier the intake should suggest), an ISO admission date
  and a day-first discharge time (`dd/mm/YYYY HH:MM`).

Nothing here is real data. `--declarations` writes the steward's declarations `bench/release_quality.py
--declarations` takes (public clinical ranges and the code list, never the table's own values), which
a DP synthesizer needs:

    .venv/bin/python bench/clinical_tables.py --rows 5000 --seed 1 --out /tmp/hard_icu.csv \\
        --declarations /tmp/hard_icu.json
    .venv/bin/python bench/release_quality.py --tables --csv /tmp/hard_icu.csv:died_30d \\
        --declarations /tmp/hard_icu.json --synthesizer dp_copula --epsilon 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLE = "hard_icu"
CODES = 361
# ICD-10-shaped codes: a letter, two digits, a decimal digit (A00.0 ... ), deterministic.
_LETTERS = "ABCDEFGIJKLMNRS"


def diagnosis_codes(count: int = CODES) -> list[str]:
    codes = [
        f"{letter}{number:02d}.{decimal}"
        for letter in _LETTERS
        for number in range(0, 100, 7)
        for decimal in (0, 1)
    ]
    return codes[:count]


def hard_icu(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = np.clip(rng.gamma(9.0, 7.0, rows) + 10, 18, 100).round().astype(int)
    sex = rng.choice(["F", "M"], rows, p=[0.44, 0.56])
    codes = diagnosis_codes()
    weights = 1.0 / np.arange(1, len(codes) + 1) ** 1.25
    diagnosis = rng.choice(codes, rows, p=weights / weights.sum())
    severity = rng.normal(0, 1, rows) + 0.02 * (age - 60)  # latent illness
    nyha = np.clip(np.round(1.8 + 0.6 * severity + rng.normal(0, 0.7, rows)), 1, 4).astype(int)
    asa = np.array(["I", "II", "III", "IV", "V"])[
        np.clip(np.round(2.3 + 0.7 * severity + rng.normal(0, 0.6, rows)), 0, 4).astype(int)
    ]
    gcs = np.clip(np.round(15 - np.maximum(0, rng.gamma(0.6, 4.0, rows) * (severity > 0.8))), 3, 15).astype(
        int
    )
    lactate = np.exp(0.35 + 0.35 * severity + rng.normal(0, 0.45, rows)).round(1)
    creatinine = np.exp(0.0 + 0.25 * severity + 0.005 * (age - 60) + rng.normal(0, 0.5, rows)).round(2)
    wbc = np.exp(2.2 + 0.2 * severity + rng.normal(0, 0.4, rows)).round(1)
    sodium = np.round(139 + rng.normal(0, 4, rows) - 1.0 * severity).astype(float)
    ph = np.clip(7.40 - 0.05 * severity + rng.normal(0, 0.05, rows), 6.8, 7.8).round(2)
    pco2 = np.clip(40 + 4 * severity + rng.normal(0, 6, rows), 15, 120).round(0)
    po2 = np.clip(90 - 8 * severity + rng.normal(0, 20, rows), 30, 500).round(0)
    hco3 = np.clip(24 - 2 * severity + rng.normal(0, 2.5, rows), 5, 45).round(1)
    sbp = np.round(125 - 8 * severity + rng.normal(0, 18, rows)).astype(float)
    dbp = np.round(0.55 * sbp + rng.normal(6, 8, rows)).astype(float)
    heart_rate = np.round(85 + 8 * severity + rng.normal(0, 14, rows)).astype(int)
    ventilated = (severity + rng.normal(0, 1, rows) > 1.4).astype(int)
    los_days = np.round(rng.gamma(1.5, 3.0, rows) * np.exp(0.25 * severity)).astype(int) + 1
    logit = (
        -4.6
        + 0.045 * (age - 65)
        + 0.5 * np.log(lactate)
        + 0.18 * (15 - gcs)
        + 1.0 * ventilated
        - 6 * (ph - 7.4)
    )
    died = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    admit = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, rows), unit="D")
    discharge = admit + pd.to_timedelta(los_days * 24 * 60 + rng.integers(0, 24 * 60, rows), unit="min")
    frame = pd.DataFrame(
        {
            "patient_no": rng.permutation(np.arange(100_000, 100_000 + rows)),
            "age": age,
            "sex": sex,
            "admit_date": admit.strftime("%Y-%m-%d"),
            "discharge_time": discharge.strftime("%d/%m/%Y %H:%M"),
            "diagnosis": diagnosis,
            "nyha_class": nyha,
            "asa_class": asa,
            "gcs": gcs,
            "lactate": lactate,
            "creatinine": creatinine,
            "wbc": wbc,
            "sodium": sodium,
            "ph": ph,
            "pco2": pco2,
            "po2": po2,
            "hco3": hco3,
            "sbp": sbp,
            "dbp": dbp,
            "heart_rate": heart_rate,
            "ventilated": ventilated,
            "los_days": los_days,
            "died_30d": died,
        }
    )
    # The blood-gas panel is drawn for the sicker: missing as a block, in about 40% of rows.
    no_gas = rng.random(rows) < 1 / (1 + np.exp(0.3 + 1.2 * severity))
    frame.loc[no_gas, ["ph", "pco2", "po2", "hco3"]] = np.nan
    no_bp = rng.random(rows) < 0.05
    frame.loc[no_bp, ["sbp", "dbp"]] = np.nan
    for column in ("wbc", "sodium"):
        frame.loc[rng.random(rows) < 0.02, column] = np.nan
    return frame


def declarations() -> list[dict[str, Any]]:
    """Public domains: clinical ranges, the code list, the scales' values; complete columns non-nullable."""

    def number(
        name: str, lower: float, upper: float, *, decimals: int = 0, nullable: bool = False
    ) -> dict[str, Any]:
        change: dict[str, Any] = {"name": name, "lower": lower, "upper": upper, "nullable": nullable}
        if decimals:
            change["decimals"] = decimals
        else:
            change["integer"] = True
        return change

    return [
        number("age", 18, 110),
        {"name": "sex", "categories": ["F", "M"], "nullable": False},
        {"name": "diagnosis", "categories": diagnosis_codes(), "nullable": False},
        {**number("nyha_class", 1, 4), "allowed_values": [1, 2, 3, 4]},
        {"name": "asa_class", "categories": ["I", "II", "III", "IV", "V"], "nullable": False},
        number("gcs", 3, 15),
        number("lactate", 0.1, 30, decimals=1),
        number("creatinine", 0.1, 20, decimals=2),
        number("wbc", 0.1, 100, decimals=1, nullable=True),
        number("sodium", 100, 180, nullable=True),
        number("ph", 6.5, 8.0, decimals=2, nullable=True),
        number("pco2", 10, 150, nullable=True),
        number("po2", 20, 600, nullable=True),
        number("hco3", 2, 60, decimals=1, nullable=True),
        number("sbp", 40, 260, nullable=True),
        number("dbp", 20, 160, nullable=True),
        number("heart_rate", 20, 250),
        number("los_days", 1, 365),
        {"name": "admit_date", "lower": "2015-01-01", "upper": "2025-12-31", "nullable": False},
        {"name": "discharge_time", "lower": "2015-01-01", "upper": "2026-12-31", "nullable": False},
        {"name": "ventilated", "categories": ["0", "1"], "nullable": False},
        {"name": "died_30d", "categories": ["0", "1"], "nullable": False},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--declarations", type=Path, help="also write the steward's declarations (JSON)")
    args = parser.parse_args()
    frame = hard_icu(args.rows, args.seed)
    frame.to_csv(args.out, index=False)
    print(
        f"{args.out}: {len(frame)} rows x {frame.shape[1]} columns; died_30d {frame['died_30d'].mean():.3f}"
    )
    if args.declarations:
        table = args.out.stem
        args.declarations.write_text(json.dumps({table: declarations()}, indent=1))
        print(f"{args.declarations}: declarations for table {table!r}")


if __name__ == "__main__":
    main()
