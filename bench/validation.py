"""Validation benchmark: our whole suite against SDMetrics, then our suite alone at 100k rows.

Not part of the test run. Prints figures; docs/benchmarks.md records a run.

    .venv/bin/python bench/validation.py                  # both parts (SDMetrics' DCR: ~20 min)
    .venv/bin/python bench/validation.py --part scale     # only the 100k-row run
    .venv/bin/python bench/validation.py --compare-rows 2000   # a quick look at the comparison

Part 1, comparison. flchain.csv (7,874 x 11) grown (as bench/synthesis.py grows it: rows resampled
with replacement, numeric columns jittered by 5% of their std, clipped, whole numbers rounded) to
2 x --compare-rows rows and split in two equal halves: training and holdout, so SDMetrics'
DCROverfittingProtection and our share-closer-to-training see equal-sized references. A
GaussianCopula fitted on the training half (outside any measurement) samples --compare-rows
synthetic rows. Then, each in a fresh subprocess:
  - ours:     validation.suite.run_suite, the whole suite as the worker runs it (utility, TSTR,
              copies, replicated uniques, distances, membership inference, anonymeter's three
              attacks), nearest-neighbour work subsampled to 5,000 rows per side;
  - ours-dcr: our distance code alone with no subsampling, on exactly SDMetrics' inputs, to show
              the overlapping numbers are the same computation;
  - sdmetrics: QualityReport + DCRBaselineProtection + DCROverfittingProtection (no subsampling).
The ratio is SDMetrics' time over our whole suite's time.

Part 2, scale. flchain grown to 125,000 rows, split 100,000 training / 25,000 holdout (the portal's
20% holdout); a GaussianCopula fitted on the training rows samples 100,000 synthetic rows. Our suite
runs once in a fresh subprocess; time and peak memory (VmHWM) are reported, beside a baseline
subprocess that only imports and loads the tables.

Part 3, release (issue 12: validation fast enough for a bake-off). tests/data/actg175.csv
(2,139 x 27) grown to 6,250 rows and widened to 40 columns (`wide_table`: the patient number
dropped, 14 columns derived from the others), split 5,000 training / 1,250 holdout. In one run it
prints GaussianCopula's fit+sample time (the default request, output held to the declarations as
the pipeline does), then the whole suite on the 5,000-row release, twice, each in a fresh
subprocess, with wall time, peak memory (VmHWM) and each gate check's seconds. The first suite run
in a new environment also compiles anonymeter's numba kernels (about 7 s) and caches them on disk;
the second shows what every later worker process pays. Target: under 30 s and 1 GiB on 2 cores.

    .venv/bin/python bench/validation.py --part release

Grown rows are jittered resamples, so one source patient can appear in both halves: the privacy
numbers here measure the benchmark's data, not a release. Timings are what the benchmark is for.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthesis import DECLARED, SEED, grow, machine, peak_rss_mib  # noqa: E402

KIND_TO_SDTYPE = {"numeric": "numerical", "categorical": "categorical", "boolean": "categorical"}
CLASSIFICATION = {  # what the intake suggests for flchain's columns (generation.policies)
    "age": "quasi_identifier", "sample.yr": "quasi_identifier", "sex": "quasi_identifier",
    "chapter": "sensitive", "mgus": "sensitive", "death": "sensitive",
}  # fmt: skip
INTEGER_COLUMNS = {"age", "flc.grp", "sample.yr", "futime"}
OUTCOME = "death"  # what flchain's steward declares (the demo does): TSTR predicts it


def infos() -> list[Any]:
    from validation.metrics.columns import ColumnInfo

    return [
        ColumnInfo(
            name,
            kind,
            CLASSIFICATION.get(name, "other"),
            lo,
            hi,
            cats,
            name in INTEGER_COLUMNS,
            name == OUTCOME,
        )
        for name, kind, lo, hi, cats, _nullable in DECLARED
    ]


def sdmetrics_metadata() -> dict[str, Any]:
    return {"columns": {name: {"sdtype": KIND_TO_SDTYPE[kind]} for name, kind, *_ in DECLARED}}


def prepare(folder: Path, total_rows: int, training_rows: int, synthetic_rows: int) -> Path:
    """Grow, split, synthesize; pickle the three tables. Returns the pickle's path."""
    import pandas as pd

    from bench.synthesis import specs
    from generation.synthesizers import synthesizer_for

    grown_path = folder / f"grown-{total_rows}.pkl"
    grow(total_rows, grown_path)
    grown = pd.read_pickle(grown_path).sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    training = grown.iloc[:training_rows].reset_index(drop=True)
    holdout = grown.iloc[training_rows:].reset_index(drop=True)
    synthetic = synthesizer_for("gaussian_copula").fit_sample(
        training, columns=specs(), rows=synthetic_rows, seed=1, progress=lambda f, s: None
    )
    tables = folder / f"tables-{total_rows}.pkl"
    pd.to_pickle({"training": training, "holdout": holdout, "synthetic": synthetic}, tables)
    return tables


# --- Measurements (each in a fresh subprocess) -------------------------------------------------------


def measure_ours(tables: dict[str, Any]) -> dict[str, Any]:
    from validation.suite import run_suite

    result = run_suite(**tables, infos=infos(), seed=1)
    m = result.metrics
    return {
        "passed": result.passed,
        "failed_checks": [c.name for c in result.checks if not c.passed],
        "column_shapes": m["column_shape_similarity"],
        "column_pair_trends": m["column_pair_trend_similarity"],
        "column_pair_trends_sdmetrics_binning": m["column_pair_trend_similarity_sdmetrics"],
        "dcr_overfitting_protection": m["dcr"]["overfitting_protection"],
        "dcr_baseline_protection": m["dcr"]["baseline_protection"],
        "share_closer_to_training": m["dcr"]["share_closer_to_training"],
        "share_closer_to_training_ci": m["dcr"]["share_closer_to_training_ci"],
        "dcr_n": m["dcr"]["n_synthetic"],
        "mia_auc": m["membership_inference"]["auc"],
        "mia_auc_ci": m["membership_inference"]["auc_ci"],
        "tstr_ratio": m["tstr"].get("ratio"),
        "seconds_by_metric": m["seconds"],
    }


def measure_ours_dcr(tables: dict[str, Any]) -> dict[str, Any]:
    """Our DCR code on SDMetrics' exact inputs (no subsampling; ranges per reference, as theirs)."""
    import numpy as np

    from validation.metrics.distance import fit_embedding, nearest_distances
    from validation.metrics.privacy import random_like

    columns = infos()
    training, holdout, synthetic = tables["training"], tables["holdout"], tables["synthetic"]

    def dcr(queries: Any, reference: Any) -> Any:
        embedding = fit_embedding(reference, columns)
        return nearest_distances(
            embedding.transform(queries), embedding.transform(reference), embedding.columns
        )

    to_train, to_hold = dcr(synthetic, training), dcr(synthetic, holdout)
    randoms = random_like(training, len(synthetic), columns, np.random.default_rng(1))
    share = float((to_train < to_hold).mean())
    baseline = float(np.median(to_train) / np.median(dcr(randoms, training)))
    # The suite's convention: one scale (the training ranges) for both references.
    common = fit_embedding(training, columns)
    s, t, h = (common.transform(f) for f in (synthetic, training, holdout))
    share_common = float(
        (nearest_distances(s, t, common.columns) < nearest_distances(s, h, common.columns)).mean()
    )
    return {
        "dcr_overfitting_protection": min((1 - share) * 2, 1.0),
        "share_closer_to_training": share,
        "dcr_baseline_protection": min(baseline, 1.0),
        "share_common_scale": share_common,
    }


def measure_sdmetrics(tables: dict[str, Any]) -> dict[str, Any]:
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.single_table import DCRBaselineProtection, DCROverfittingProtection

    metadata = sdmetrics_metadata()
    training, holdout, synthetic = tables["training"], tables["holdout"], tables["synthetic"]
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    report = QualityReport()
    report.generate(training, synthetic, metadata, verbose=False)
    seconds["QualityReport"] = time.perf_counter() - started
    started = time.perf_counter()
    baseline = DCRBaselineProtection.compute_breakdown(training, synthetic, metadata, None)
    seconds["DCRBaselineProtection"] = time.perf_counter() - started
    started = time.perf_counter()
    overfitting = DCROverfittingProtection.compute_breakdown(training, synthetic, holdout, metadata, None)
    seconds["DCROverfittingProtection"] = time.perf_counter() - started
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "column_shapes": float(properties["Column Shapes"]),
        "column_pair_trends": float(properties["Column Pair Trends"]),
        "dcr_baseline_protection": float(baseline["score"]),
        "dcr_overfitting_protection": float(overfitting["score"]),
        "share_closer_to_training": float(overfitting["synthetic_data_percentages"]["closer_to_training"]),
        "seconds_by_metric": seconds,
    }


MEASURES = {
    "ours": measure_ours,
    "ours-dcr": measure_ours_dcr,
    "sdmetrics": measure_sdmetrics,
    "release": lambda tables: measure_release(tables),
}


def worker(what: str, tables_path: Path, output: Path | None = None) -> None:
    import warnings

    import pandas as pd

    import validation.suite  # noqa: F401  (imported before the baseline, like the worker has it)

    warnings.simplefilter("ignore")
    tables = pd.read_pickle(tables_path)
    loaded_mib = peak_rss_mib()
    started = time.perf_counter()
    if what == "baseline":
        result: dict[str, Any] = {}
    elif what == "synthesize":
        result = measure_synthesis(tables, Path(str(output)))
    else:
        result = MEASURES[what](tables)
    seconds = time.perf_counter() - started
    print(json.dumps({**result, "seconds": seconds, "peak_mib": peak_rss_mib(), "loaded_mib": loaded_mib}))


def measure(what: str, tables: Path, output: Path | None = None) -> dict[str, Any]:
    env = {
        **os.environ,
        "XDG_DATA_HOME": os.environ.get("XDG_DATA_HOME", tempfile.gettempdir() + "/sg-bench-xdg"),
    }
    command = [sys.executable, __file__, "--worker", what, str(tables), *([str(output)] if output else [])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- Parts -------------------------------------------------------------------------------------------


def compare(folder: Path, rows: int) -> None:
    print(
        f"\n== Part 1: our suite vs SDMetrics on {rows:,} training / {rows:,} holdout / {rows:,} synthetic rows"
    )
    tables = prepare(folder, 2 * rows, rows, rows)
    ours = measure("ours", tables)
    print(f"ours (whole suite)        {ours['seconds']:8.1f} s  peak {ours['peak_mib']:6.0f} MiB", flush=True)
    print("   by metric: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["seconds_by_metric"].items()))
    exact = measure("ours-dcr", tables)
    print(f"ours (DCR alone, no subsampling) {exact['seconds']:8.1f} s", flush=True)
    theirs = measure("sdmetrics", tables)
    print(f"sdmetrics (QR + 2 DCR)    {theirs['seconds']:8.1f} s  peak {theirs['peak_mib']:6.0f} MiB")
    print("   by metric: " + ", ".join(f"{k} {v:.1f}" for k, v in theirs["seconds_by_metric"].items()))
    print(f"ratio sdmetrics / ours    {theirs['seconds'] / ours['seconds']:8.1f} x")
    print(f"\n{'metric':38} {'ours (suite)':>14} {'ours (DCR, full)':>17} {'sdmetrics':>10}")
    rows_out = [
        ("Column Shapes", ours["column_shapes"], None, theirs["column_shapes"]),
        ("Column Pair Trends (SDMetrics binning)", ours["column_pair_trends_sdmetrics_binning"], None,
         theirs["column_pair_trends"]),
        ("Column Pair Trends (aligned bins, gated)", ours["column_pair_trends"], None, None),
        ("DCROverfittingProtection", ours["dcr_overfitting_protection"], exact["dcr_overfitting_protection"],
         theirs["dcr_overfitting_protection"]),
        ("  share closer to training", ours["share_closer_to_training"], exact["share_closer_to_training"],
         theirs["share_closer_to_training"]),
        ("  same, one scale (training ranges)", ours["share_closer_to_training"], exact["share_common_scale"],
         None),
        ("DCRBaselineProtection", ours["dcr_baseline_protection"], exact["dcr_baseline_protection"],
         theirs["dcr_baseline_protection"]),
    ]  # fmt: skip
    for name, a, b, c in rows_out:
        print(f"{name:38} {_fmt(a):>14} {_fmt(b):>17} {_fmt(c):>10}")
    print(
        f"(suite subsample: n = {ours['dcr_n']:,} synthetic rows, share 95% CI {ours['share_closer_to_training_ci']};"
        f" MIA AUC {ours['mia_auc']} {ours['mia_auc_ci']}; TSTR ratio {ours['tstr_ratio']};"
        f" failed checks {ours['failed_checks']})"
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def scale(folder: Path, rows: int) -> None:
    holdout = rows // 4
    print(
        f"\n== Part 2: our suite alone on {rows:,} training / {holdout:,} holdout / {rows:,} synthetic rows"
    )
    tables = prepare(folder, rows + holdout, rows, rows)
    baseline = measure("baseline", tables)
    ours = measure("ours", tables)
    print(f"baseline (imports + tables) peak {baseline['peak_mib']:6.0f} MiB")
    print(
        f"ours (whole suite)  {ours['seconds']:8.1f} s  peak {ours['peak_mib']:6.0f} MiB"
        f"  (+{ours['peak_mib'] - baseline['peak_mib']:.0f} MiB over baseline)"
    )
    print("   by metric: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["seconds_by_metric"].items()))
    print(
        f"   passed {ours['passed']}; failed checks {ours['failed_checks']}; DCR/MIA n = {ours['dcr_n']:,};"
        f" MIA AUC {ours['mia_auc']} {ours['mia_auc_ci']}"
    )


# --- Part 3: a bake-off-sized release (issue 12, item 9) -------------------------------------------

ACTG = ROOT / "tests" / "data" / "actg175.csv"
BINARY = ("hemo", "homo", "drugs", "oprior", "z30", "zprior", "race", "gender", "str2", "symptom",
          "treat", "offtrt", "r")  # fmt: skip
QUASI = {"age", "gender", "race", "age_group"}
SENSITIVE = {"cens", "drugs", "homo", "hemo", "symptom", "diagnosis_group"}


def wide_table(rows: int) -> Any:
    """actg175 (2,139 x 27, in tests/data) grown to `rows` and widened to 40 columns.

    Rows are resampled with replacement and numbers jittered (5% of each column's std, clipped,
    whole numbers rounded), as bench/synthesis.py grows flchain. The patient number is dropped (a
    direct identifier is never released). 14 columns are derived from the others, so they carry
    real relationships: CD4/CD8 changes and ratio, banded age and weight, the arm's
    label, a site, an enrolment date, a lab panel (albumin, creatinine, haemoglobin) whose cells go
    missing together in 30% of rows, paired blood pressure readings missing together in 10%, and a
    diagnosis group.
    """
    import numpy as np
    import pandas as pd

    source = pd.read_csv(ACTG).drop(columns=["pidnum"])
    rng = np.random.default_rng(SEED)
    grown = source.sample(n=rows, replace=True, random_state=SEED).reset_index(drop=True)
    for column in source.columns:
        if column in BINARY or column in ("cens", "arms", "strat", "karnof"):
            continue
        values = source[column].dropna()
        noisy = (grown[column] + rng.normal(0.0, JITTER_WIDE * values.std(), size=rows)).clip(
            values.min(), values.max()
        )
        grown[column] = (noisy.round() if (values == values.round()).all() else noisy.round(4)).where(
            grown[column].notna()
        )
    noise = rng.normal(size=(rows, 5))
    grown["cd4_change"] = grown["cd420"] - grown["cd40"]
    grown["cd8_change"] = grown["cd820"] - grown["cd80"]
    grown["cd4_cd8_ratio"] = (grown["cd40"] / grown["cd80"].clip(lower=1)).round(3)
    grown["age_group"] = pd.cut(grown["age"], [0, 30, 40, 50, 120], labels=["<30", "30-39", "40-49", "50+"])
    grown["weight_class"] = pd.cut(
        grown["wtkg"], [0, 60, 75, 90, 200], labels=["low", "normal", "high", "very high"]
    )
    grown["arm_label"] = grown["arms"].map({0: "ZDV", 1: "ZDV+ddI", 2: "ZDV+ddC", 3: "ddI"})
    grown["site"] = rng.choice([f"site {i:02d}" for i in range(12)], size=rows)
    start = pd.Timestamp("1989-12-01")
    grown["enrol_date"] = (start + pd.to_timedelta(rng.integers(0, 900, size=rows), unit="D")).astype(str)
    panel = rng.random(rows) < 0.3
    grown["albumin"] = (4.2 - 0.01 * grown["age"] + 0.3 * noise[:, 0]).round(1).where(~panel)
    grown["creatinine"] = (0.9 + 0.004 * grown["wtkg"] + 0.2 * noise[:, 1]).clip(0.3).round(2).where(~panel)
    grown["hemoglobin"] = (13.5 + 0.004 * grown["cd40"] + noise[:, 2]).round(1).where(~panel)
    pressure = rng.random(rows) < 0.1
    grown["sbp"] = (118 + 0.4 * grown["age"] + 12 * noise[:, 3]).round().where(~pressure)
    grown["dbp"] = (0.55 * grown["sbp"] + 8 * noise[:, 4]).round()
    grown["diagnosis_group"] = np.where(
        grown["symptom"] == 1, "symptomatic", np.where(grown["cd40"] < 200, "advanced", "early")
    )
    for column in ("age_group", "weight_class"):
        grown[column] = grown[column].astype(str)
    return grown


JITTER_WIDE = 0.05


def wide_declarations(frame: Any) -> list[dict[str, Any]]:
    """What a steward would declare for the widened table: kinds, bounds, categories, outcome."""
    import pandas as pd

    declared = []
    for name in frame.columns:
        series = frame[name]
        item: dict[str, Any] = {"name": name, "nullable": bool(series.isna().any())}
        if name in BINARY or name == "cens":
            item.update(kind="boolean", categories=("0", "1"))
        elif name == "enrol_date":
            dates = pd.to_datetime(series)
            item.update(kind="datetime", lower=dates.min().isoformat(), upper=dates.max().isoformat())
        elif pd.api.types.is_numeric_dtype(series):
            values = series.dropna()
            item.update(kind="numeric", lower=float(values.min()), upper=float(values.max()),
                        integer=bool((values == values.round()).all()))  # fmt: skip
        else:
            item.update(kind="categorical", categories=tuple(sorted(series.dropna().astype(str).unique())))
        item["classification"] = (
            "quasi_identifier" if name in QUASI else "sensitive" if name in SENSITIVE else "other"
        )
        item["outcome"] = name == "cens"
        declared.append(item)
    return declared


def wide_infos(frame: Any) -> list[Any]:
    from validation.metrics.columns import column_infos

    return column_infos(wide_declarations(frame))


def prepare_wide(folder: Path, rows: int, columns: int) -> Path:
    """Grow and widen actg175, split 80/20 like the intake; pickle training and holdout."""
    grown = wide_table(rows + rows // 4).iloc[:, :columns]
    training = grown.iloc[:rows].reset_index(drop=True)
    holdout = grown.iloc[rows:].reset_index(drop=True)
    path = folder / f"wide-{rows}.pkl"
    import pandas as pd

    pd.to_pickle({"training": training, "holdout": holdout}, path)
    return path


def measure_synthesis(tables: dict[str, Any], path: Path) -> dict[str, Any]:
    """GaussianCopula (the default request) fitted on the training rows; the release is stored
    beside the tables for the validation subprocess."""
    import pandas as pd

    from generation.conformance import conform_to_declared
    from generation.synthesizers import ColumnSpec, synthesizer_for

    training = tables["training"]
    specs = [
        ColumnSpec(
            d["name"],
            d["kind"],
            lower=_spec_bound(d.get("lower")),
            upper=_spec_bound(d.get("upper")),
            categories=d.get("categories"),
            nullable=d["nullable"],
            integer=d.get("integer", False),
        )  # fmt: skip
        for d in wide_declarations(training)
    ]
    synthetic = synthesizer_for("gaussian_copula").fit_sample(
        training, columns=specs, rows=len(training), seed=1, progress=lambda f, s: None
    )
    # As the pipeline does before validating: hold the output to the declarations.
    synthetic, _changes = conform_to_declared(synthetic, wide_declarations(training))
    pd.to_pickle({**tables, "synthetic": synthetic}, path)
    return {"rows": len(synthetic), "columns": synthetic.shape[1]}


def _spec_bound(value: Any) -> Any:
    """Synthesizers take date-time bounds as epoch seconds (generation.synthesizers.ColumnSpec)."""
    import pandas as pd

    return pd.Timestamp(value).timestamp() if isinstance(value, str) else value


def measure_release(tables: dict[str, Any]) -> dict[str, Any]:
    from validation.suite import run_suite

    columns = wide_infos(tables["training"])
    result = run_suite(**tables, infos=columns, seed=1)
    metrics = result.metrics
    return {
        "passed": result.passed,
        "checks": [
            {
                "name": c.name,
                "status": getattr(c, "status", "passed" if c.passed else "failed"),
                "value": c.value,
                "seconds": getattr(c, "seconds", None),
            }
            for c in result.checks
        ],  # fmt: skip
        "seconds_by_metric": metrics["seconds"],
        "quality": metrics.get("column_shape_similarity"),
    }


def release(folder: Path, rows: int, columns: int) -> None:
    print(f"\n== Part 3: one release of {rows:,} rows x {columns} columns (actg175 grown and widened)")
    tables = prepare_wide(folder, rows, columns)
    synthesized = folder / f"wide-{rows}-synthetic.pkl"
    synthesis = measure("synthesize", tables, synthesized)
    print(
        f"synthesis (gaussian_copula fit+sample) {synthesis['seconds']:8.1f} s  peak {synthesis['peak_mib']:6.0f} MiB"
    )
    baseline = measure("baseline", synthesized)
    first = measure("release", synthesized)
    suite = measure("release", synthesized)
    for label, run in (("first run (may compile kernels)", first), ("next run", suite)):
        print(
            f"validation (whole suite), {label:32} {run['seconds']:6.1f} s  peak {run['peak_mib']:5.0f} MiB"
            f"  (+{run['peak_mib'] - baseline['peak_mib']:.0f} MiB over imports + tables)"
        )
    print("   by metric: " + ", ".join(f"{k} {v:.1f}" for k, v in suite["seconds_by_metric"].items()))
    for check in suite["checks"]:
        seconds = "" if check["seconds"] is None else f"{check['seconds']:6.2f} s"
        print(f"   {check['name']:30} {check['status']:8} {seconds}")
    print(f"   machine load average during the run: {os.getloadavg()[0]:.1f}")
    print(f"   gate passed {suite['passed']}; column shapes {suite['quality']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("all", "compare", "scale", "release"), default="all")
    parser.add_argument("--compare-rows", type=int, default=10_000)
    parser.add_argument("--scale-rows", type=int, default=100_000)
    parser.add_argument("--release-rows", type=int, default=5_000)
    parser.add_argument("--release-columns", type=int, default=40)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]) if len(args.worker) > 2 else None)
        return
    print(f"machine: {machine()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        if args.part in ("all", "release"):
            release(Path(name), args.release_rows, args.release_columns)
        if args.part in ("all", "compare"):
            compare(Path(name), args.compare_rows)
        if args.part in ("all", "scale"):
            scale(Path(name), args.scale_rows)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
