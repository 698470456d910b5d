"""DP quality benchmark: dp_copula, dp_aim and dp_mst at several epsilons on the shared tables.

Not part of the test run. Prints a table; docs/benchmarks.md ("DP synthesizers: quality") records a run.

    .venv/bin/python bench/dp_quality.py                            # everything (~1 h on 2 busy cores)
    .venv/bin/python bench/dp_quality.py --tables gbsg2 --epsilons 1 --synthesizers dp_copula
    .venv/bin/python bench/dp_quality.py --data /path/to/csvs --repeats 3

Protocol. Each table is split once (seed 0) into 80% training and 20% holdout rows. A synthesizer is
fitted on the training rows with the DECLARATIONS BELOW, written by hand from public clinical
knowledge (plausible ranges, the categories a form would offer), never read from the data; it then
samples as many rows as the training split has. Scores, all computed against real rows (this is an
evaluation, not part of any release):
- univariate accuracy: 1 - mean total variation distance between real (training) and synthetic
  marginals; numeric columns in 20 equal-width bins over the real column's range, categorical
  columns over their categories, missing as a category of its own;
- pair trends: mean over column pairs of SDMetrics' Column Pair Trends scores, computed here:
  1 - |Pearson_real - Pearson_synthetic| / 2 for two numeric columns (CorrelationSimilarity),
  1 - total variation distance of the joint distribution otherwise (ContingencySimilarity, numeric
  columns in 10 quantile bins of the real column);
- TSTR / TRTR: AUC on the holdout of a gradient-boosted classifier (scikit-learn
  HistGradientBoosting, fixed seed) for the declared outcome, trained on synthetic rows (TSTR) or on
  the real training rows (TRTR); the ratio is TSTR / TRTR.
Times are wall-clock: fit (the mechanisms plus, for MST/AIM, the model estimated by mirror descent)
and sample.

AIM's cost grows with its rounds (each refits a graphical model); to keep the run feasible on
2 shared cores it runs with `rounds` = 2 x columns (smartnoise: 16 x columns), 50 mirror-descent
iterations per round and 1000 for the final model. This changes utility, not the guarantee.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.synthesizers import ColumnSpec, synthesizer_for  # noqa: E402

NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
YES_NO = ("0", "1")


def num(
    name: str, lower: float, upper: float, *, integer: bool = False, nullable: bool = False
) -> ColumnSpec:
    return ColumnSpec(name, NUMERIC, lower=lower, upper=upper, integer=integer, nullable=nullable)


def cat(name: str, categories: tuple[str, ...], *, nullable: bool = False) -> ColumnSpec:
    return ColumnSpec(name, CATEGORICAL, categories=categories, nullable=nullable)


def flag(name: str) -> ColumnSpec:
    return ColumnSpec(name, BOOLEAN, categories=YES_NO, nullable=False)


@dataclass(frozen=True)
class Table:
    name: str
    outcome: str
    specs: list[ColumnSpec]
    dropped: tuple[str, ...] = field(default=())


# Public declarations. Ranges are clinically plausible limits, not the study's extremes.
ICD9_CHAPTERS = (
    "Infectious", "Neoplasms", "Endocrine", "Blood", "Mental", "Nervous", "Circulatory", "Respiratory",
    "Digestive", "Genitourinary", "Pregnancy", "Skin", "Musculoskeletal", "Congenital", "Perinatal",
    "Ill Defined", "Injury and Poisoning", "External Causes",
)  # fmt: skip
TABLES = {
    # Mayo serum free light chain study: residents of Olmsted County aged 50+, samples 1995-2003.
    "flchain": Table(
        "flchain",
        "death",
        [
            num("age", 50, 105, integer=True),
            cat("sex", ("F", "M")),
            num("sample.yr", 1995, 2003, integer=True),
            num("kappa", 0, 50),  # mg/L; reference range 3.3-19.4
            num("lambda", 0, 50),  # mg/L; reference range 5.7-26.3
            cat("flc.grp", tuple(str(i) for i in range(1, 11))),  # deciles of total FLC
            num("creatinine", 0, 10, nullable=True),  # mg/dL
            cat("mgus", ("no", "yes")),
            num("futime", 0, 6000, integer=True),  # days of follow-up (study ran ~14 years)
            flag("death"),
            cat("chapter", ICD9_CHAPTERS, nullable=True),  # ICD-9 chapter of the cause of death
        ],
    ),
    # German Breast Cancer Study Group 2 trial (node-positive breast cancer, 1984-1989).
    "gbsg2": Table(
        "gbsg2",
        "cens",
        [
            cat("horTh", ("no", "yes")),
            num("age", 18, 90, integer=True),
            cat("menostat", ("Pre", "Post")),
            num("tsize", 0, 150, integer=True),  # mm
            cat("tgrade", ("I", "II", "III")),
            num("pnodes", 0, 60, integer=True),  # positive lymph nodes
            num("progrec", 0, 2500),  # fmol/mg, progesterone receptor
            num("estrec", 0, 2500),  # fmol/mg, estrogen receptor
            num("time", 0, 3000, integer=True),  # days
            flag("cens"),
        ],
    ),
    # AIDS Clinical Trials Group 175 (HIV-infected adults, CD4 200-500). pidnum is an identifier.
    "actg175": Table(
        "actg175",
        "cens",
        [
            num("age", 12, 80, integer=True),
            num("wtkg", 30, 160),
            *(flag(c) for c in ("hemo", "homo", "drugs")),
            cat("karnof", ("70", "80", "90", "100")),  # Karnofsky score, eligibility >= 70
            *(flag(c) for c in ("oprior", "z30", "zprior")),
            num("preanti", 0, 3000, integer=True),  # days of prior antiretroviral therapy
            *(flag(c) for c in ("race", "gender", "str2")),
            cat("strat", ("1", "2", "3")),
            *(flag(c) for c in ("symptom", "treat", "offtrt")),
            num("cd40", 0, 1500, integer=True),  # CD4 cells/mm3
            num("cd420", 0, 1500, integer=True),
            num("cd496", 0, 1500, integer=True, nullable=True),
            flag("r"),
            num("cd80", 0, 6000, integer=True),  # CD8 cells/mm3
            num("cd820", 0, 6000, integer=True),
            flag("cens"),
            num("days", 0, 1300, integer=True),
            cat("arms", ("0", "1", "2", "3")),
        ],
        dropped=("pidnum",),
    ),
}

SYNTHESIZER_OPTIONS: dict[str, dict[str, Any]] = {
    "dp_copula": {},
    "dp_mst": {},
    "dp_aim": {"round_iters": 50},  # rounds set per table: 2 x columns
}


def quiet(fraction: float, stage: str) -> None:
    return None


# --- scores --------------------------------------------------------------------------------------


def _labels(series: pd.Series) -> pd.Series:
    """Category labels with 1, 1.0 and "1" alike, missing as its own label."""

    def one(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "<missing>"
        if isinstance(value, int | float | np.integer | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return series.astype(object).map(one)


def _tvd(p: pd.Series, q: pd.Series) -> float:
    return 0.5 * float(p.sub(q, fill_value=0).abs().sum())


def _binned(
    real: pd.Series, synthetic: pd.Series, bins: int, *, quantile: bool
) -> tuple[pd.Series, pd.Series]:
    values = pd.to_numeric(real, errors="coerce").dropna()
    if quantile:
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    else:
        edges = np.linspace(values.min(), values.max(), bins + 1)
    edges[0], edges[-1] = -np.inf, np.inf

    def cut(series: pd.Series) -> pd.Series:
        codes = pd.cut(pd.to_numeric(series, errors="coerce"), edges, labels=False)
        return codes.astype(object).where(codes.notna(), "<missing>").astype(str)

    return cut(real), cut(synthetic)


def univariate_accuracy(real: pd.DataFrame, synthetic: pd.DataFrame, specs: list[ColumnSpec]) -> float:
    distances = []
    for spec in specs:
        if spec.kind == NUMERIC:
            r, s = _binned(real[spec.name], synthetic[spec.name], 20, quantile=False)
        else:
            r, s = _labels(real[spec.name]), _labels(synthetic[spec.name])
        distances.append(_tvd(r.value_counts(normalize=True), s.value_counts(normalize=True)))
    return 1 - float(np.mean(distances))


def pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, specs: list[ColumnSpec]) -> float:
    scores = []
    for a, b in itertools.combinations(specs, 2):
        if a.kind == NUMERIC and b.kind == NUMERIC:
            r = real[[a.name, b.name]].astype(float).corr().iloc[0, 1]
            s = synthetic[[a.name, b.name]].astype(float).corr().iloc[0, 1]
            scores.append(1 - abs(np.nan_to_num(r) - np.nan_to_num(s)) / 2)
            continue
        columns = []
        for spec in (a, b):
            if spec.kind == NUMERIC:
                columns.append(_binned(real[spec.name], synthetic[spec.name], 10, quantile=True))
            else:
                columns.append((_labels(real[spec.name]), _labels(synthetic[spec.name])))
        joint_real = (columns[0][0] + "|" + columns[1][0]).value_counts(normalize=True)
        joint_synthetic = (columns[0][1] + "|" + columns[1][1]).value_counts(normalize=True)
        scores.append(1 - _tvd(joint_real, joint_synthetic))
    return float(np.mean(scores))


def _features(frame: pd.DataFrame, specs: list[ColumnSpec], outcome: str) -> pd.DataFrame:
    parts = []
    for spec in specs:
        if spec.name == outcome:
            continue
        if spec.kind == NUMERIC:
            parts.append(pd.to_numeric(frame[spec.name], errors="coerce").astype(float).rename(spec.name))
        else:
            labels = pd.Categorical(_labels(frame[spec.name]), categories=[*spec.categories, "<missing>"])
            parts.append(pd.get_dummies(labels, prefix=spec.name, dtype=float).set_index(frame.index))
    return pd.concat(parts, axis=1)


def auc(train: pd.DataFrame, test: pd.DataFrame, specs: list[ColumnSpec], outcome: str) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    y_train = _labels(train[outcome]) == "1"
    y_test = _labels(test[outcome]) == "1"
    if y_train.nunique() < 2:
        return 0.5  # a synthetic table with one outcome class cannot rank anything
    model = HistGradientBoostingClassifier(random_state=0, max_iter=200)
    model.fit(_features(train, specs, outcome), y_train)
    return float(roc_auc_score(y_test, model.predict_proba(_features(test, specs, outcome))[:, 1]))


# --- run -----------------------------------------------------------------------------------------


def run_one(
    table: Table, name: str, epsilon: float, train: pd.DataFrame, test: pd.DataFrame, bins: int | None
) -> dict[str, Any]:
    options = dict(SYNTHESIZER_OPTIONS[name]) | ({"bins": bins} if bins else {})
    if name == "dp_aim":
        options["rounds"] = 2 * len(table.specs)
    synth = synthesizer_for(name, epsilon=str(epsilon), options=options)
    start = time.perf_counter()
    synth.fit(train, columns=table.specs, progress=quiet)
    if hasattr(synth, "_fitted_model"):
        synth._fitted_model()  # the model estimate belongs to the fit time
    fitted = time.perf_counter()
    synthetic = synth.sample(rows=len(train), seed=1)
    sampled = time.perf_counter()
    return {
        "univariate": univariate_accuracy(train, synthetic, table.specs),
        "pairs": pair_trends(train, synthetic, table.specs),
        "tstr": auc(synthetic, test, table.specs, table.outcome),
        "fit_s": fitted - start,
        "sample_s": sampled - fitted,
        "spent": (str(synth.epsilon_spent()), str(synth.delta_spent())),
    }


REPO = Path(__file__).resolve().parent.parent


def _table_path(folder: Path | None, name: str) -> Path:
    """A table from `--data`, else the repository's copy (portal/demo for flchain, tests/data)."""
    candidates = [folder] if folder else [REPO / "portal" / "demo", REPO / "tests" / "data"]
    for candidate in candidates:
        if (candidate / f"{name}.csv").exists():
            return candidate / f"{name}.csv"
    raise SystemExit(f"{name}.csv not found in {', '.join(str(c) for c in candidates)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="folder of the tables (default: the repository's copies)"
    )
    parser.add_argument("--tables", nargs="+", default=list(TABLES))
    parser.add_argument("--synthesizers", nargs="+", default=["dp_copula", "dp_mst", "dp_aim"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.5, 1, 2, 4])
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell, averaged")
    parser.add_argument("--bins", type=int, default=None, help="override every synthesizer's default bins")
    args = parser.parse_args()

    print(f"# {date.today()} {platform.node()} {os.cpu_count()} cores, python {platform.python_version()}")
    print(
        "table | synthesizer | epsilon | univariate | pair trends | TSTR AUC | TRTR AUC | TSTR/TRTR | fit s | sample s"
    )
    print("---|---|---|---|---|---|---|---|---|---")
    for table_name in args.tables:
        table = TABLES[table_name]
        real = pd.read_csv(_table_path(args.data, table_name)).drop(columns=list(table.dropped))
        real = real[[s.name for s in table.specs]]
        order = np.random.default_rng(0).permutation(len(real))
        cut = int(0.8 * len(real))
        train, test = (
            real.iloc[order[:cut]].reset_index(drop=True),
            real.iloc[order[cut:]].reset_index(drop=True),
        )
        trtr = auc(train, test, table.specs, table.outcome)
        for name in args.synthesizers:
            for epsilon in args.epsilons:
                runs = [run_one(table, name, epsilon, train, test, args.bins) for _ in range(args.repeats)]
                mean = {
                    key: float(np.mean([r[key] for r in runs]))
                    for key in ("univariate", "pairs", "tstr", "fit_s", "sample_s")
                }
                print(
                    f"{table_name} | {name} | {epsilon:g} | {mean['univariate']:.3f} | {mean['pairs']:.3f} | "
                    f"{mean['tstr']:.3f} | {trtr:.3f} | {mean['tstr'] / trtr:.2f} | {mean['fit_s']:.1f} | "
                    f"{mean['sample_s']:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
