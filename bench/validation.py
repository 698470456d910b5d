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


MEASURES = {"ours": measure_ours, "ours-dcr": measure_ours_dcr, "sdmetrics": measure_sdmetrics}


def worker(what: str, tables_path: Path) -> None:
    import warnings

    import pandas as pd

    import validation.suite  # noqa: F401  (imported before the baseline, like the worker has it)

    warnings.simplefilter("ignore")
    tables = pd.read_pickle(tables_path)
    loaded_mib = peak_rss_mib()
    started = time.perf_counter()
    result = {} if what == "baseline" else MEASURES[what](tables)
    seconds = time.perf_counter() - started
    print(json.dumps({**result, "seconds": seconds, "peak_mib": peak_rss_mib(), "loaded_mib": loaded_mib}))


def measure(what: str, tables: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "XDG_DATA_HOME": os.environ.get("XDG_DATA_HOME", tempfile.gettempdir() + "/sg-bench-xdg"),
    }
    command = [sys.executable, __file__, "--worker", what, str(tables)]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("all", "compare", "scale"), default="all")
    parser.add_argument("--compare-rows", type=int, default=10_000)
    parser.add_argument("--scale-rows", type=int, default=100_000)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    print(f"machine: {machine()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        if args.part in ("all", "compare"):
            compare(Path(name), args.compare_rows)
        if args.part in ("all", "scale"):
            scale(Path(name), args.scale_rows)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
