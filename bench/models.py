"""DP models and federated studies benchmark (issue 15 item 7).

Not part of the test run. Prints tables; docs/benchmarks.md ("DP models and federated studies")
records a run.

    .venv/bin/python bench/models.py                                  # default (~5-10 min, 2 cores)
    .venv/bin/python bench/models.py --tables gbsg2 --epsilons 1 --repeats 1 --skip-federated
    .venv/bin/python bench/models.py --families dp_random_forest --repeats 5
    .venv/bin/python bench/models.py --skip-dp --rounds 10            # only the federated runs

Part 1, DP models. Each table with a binary outcome (flchain from portal/demo, actg175, gbsg2 and
whas500 from tests/data; pbc's status has three values and is left out) is split once (seed 0)
into 80% training and 20% holdout rows. Each model is trained by the portal's own code,
`generation.modeling.train_dp_model`, with the steward declarations bench/dp_quality.py writes by
hand from public clinical knowledge (plus whas500's, below), never read from the data. The
features are every declared column except the outcome and the columns recorded after it (follow-up
times; flchain's cause-of-death chapter, set only for the dead). `train_dp_model` also fits the
non-private baseline of the same family (scikit-learn, same encoder, same rows, fixed seed), so
every DP figure sits beside its baseline from the same call. Both are scored on the holdout:
ROC AUC with DeLong's 95% interval (`validation.metrics.model.auc_with_interval`, the model gate's
code). The DP noise is drawn from the OS per fit, so --repeats fits give a mean and a range; the
baseline is deterministic. Times: the whole `train_dp_model` call (refusals, encoding, the DP fit,
the baseline fit, the skops artifact), and the baseline fit alone on the encoded rows.

Part 2, federated study. actg175 (the largest table in tests/data) is shuffled (seed 0) and dealt
into three equal sites, each split 80/20 into training and locked holdout, stored encrypted with
the at-rest format (`generation.crypto`, a key made for the run). `federation.runtime.run_study`
then runs the real thing: one SuperLink and three SuperNodes as OS processes, the Flower App in
federation/runtime/app, each SuperNode reading only its own site's files. Two studies:
  - "DP + SecAgg+": client-side clipping (norm 1.0), Gaussian noise (multiplier 1.1), SecAgg+;
  - "no DP": no clipping, no noise, no SecAgg+ (what federation costs without the privacy layer).
The global model (logistic regression, `sgfl.task`) is scored on the pooled holdouts of the three
sites, beside two centralized models trained on the pooled training rows with the same encoding:
the same numpy model and full-batch gradient descent for rounds x local_epochs epochs
(`sgfl.task.train`), and scikit-learn's LogisticRegression (the sites' non-private baseline).
Both studies run with min_sites 2 of 3 and the "quorum" policy (all three sites answer every
round; the DP noise is calibrated to the quorum of 2, as the runtime does). Times: process start-up
(SuperLink + SuperNodes listening), then submission + health check (`flwr run` until the first
health event), each round (from the previous round's, or the health, event), total (with the final
per-site evaluation and teardown).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dp_quality import TABLES as DP_TABLES  # noqa: E402
from bench.dp_quality import Table, _table_path, flag, num  # noqa: E402

# Worcester Heart Attack Study (acute MI admissions, 1997-2001): public declarations, as a
# steward would write them from the study's codebook (Hosmer, Lemeshow & May 2008).
WHAS500 = Table(
    "whas500",
    "fstat",
    [
        flag("afb"),  # atrial fibrillation
        num("age", 18, 110, integer=True),
        flag("av3"),  # complete heart block
        num("bmi", 10, 70),  # kg/m2
        flag("chf"),  # congestive heart complications
        flag("cvd"),  # history of cardiovascular disease
        num("diasbp", 0, 250, integer=True),  # mmHg
        flag("gender"),
        num("hr", 20, 250, integer=True),  # beats/min
        num("los", 0, 100, integer=True),  # length of stay, days
        flag("miord"),  # MI order (first / recurrent)
        flag("mitype"),  # MI type (Q-wave / non-Q-wave)
        flag("sho"),  # cardiogenic shock
        num("sysbp", 40, 300, integer=True),  # mmHg
        flag("fstat"),  # vital status at last follow-up
        num("lenfol", 0, 3000, integer=True),  # days of follow-up
    ],
)
TABLES: dict[str, Table] = {**DP_TABLES, "whas500": WHAS500}
# Recorded after (or because of) the outcome: never a feature.
AFTER_OUTCOME = {
    "flchain": ("futime", "chapter"),
    "gbsg2": ("time",),
    "actg175": ("days",),
    "whas500": ("lenfol",),
}
FAMILIES = ("dp_logistic_regression", "dp_random_forest")
SHORT = {"dp_logistic_regression": "logistic", "dp_random_forest": "forest", "dp_decision_tree": "tree"}
FEDERATED_TABLE = "actg175"
SITES = ("alpha", "beta", "gamma")


# --- declarations, in the two shapes the portal pins --------------------------------------------


def column_specs(table: Table) -> tuple[dict[str, Any], ...]:
    """The table's declarations as a job pins them (`column_spec_snapshot`): source "steward"."""
    specs = []
    for spec in table.specs:
        item: dict[str, Any] = {
            "name": spec.name,
            "kind": spec.kind,
            "classification": "other",
            "source": "steward",
            "nullable": spec.nullable,
            "outcome": spec.name == table.outcome,
        }
        if spec.kind == "numeric":
            item.update(lower=spec.lower, upper=spec.upper, integer=spec.integer)
        else:
            item["categories"] = list(spec.categories or ())
        specs.append(item)
    return tuple(specs)


def features_of(table: Table) -> tuple[str, ...]:
    skip = {table.outcome, *AFTER_OUTCOME.get(table.name, ())}
    return tuple(spec.name for spec in table.specs if spec.name not in skip)


def federated_encoding(table: Table) -> dict[str, Any]:
    """The Flower App's encoding spec (sgfl.task), from the same declarations: booleans as the
    categories 0/1, the positive class the outcome's second declared value."""
    features = []
    for spec in table.specs:
        if spec.name not in features_of(table):
            continue
        if spec.kind == "numeric":
            features.append({"name": spec.name, "kind": "numeric", "lower": spec.lower, "upper": spec.upper})
        else:
            features.append({"name": spec.name, "kind": "categorical", "categories": list(spec.categories)})
    outcome = next(spec for spec in table.specs if spec.name == table.outcome)
    return {"features": features, "target": {"name": table.outcome, "positive": [outcome.categories[-1]]}}


def load(name: str) -> pd.DataFrame:
    table = TABLES[name]
    frame = pd.read_csv(_table_path(None, name)).drop(columns=list(table.dropped))
    return frame[[spec.name for spec in table.specs]]


def split(frame: pd.DataFrame, seed: int = 0, share: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(share * len(frame))
    return (
        frame.iloc[order[:cut]].reset_index(drop=True),
        frame.iloc[order[cut:]].reset_index(drop=True),
    )


# --- part 1: DP models ----------------------------------------------------------------------------


@dataclass
class ModelRow:
    table: str
    family: str
    epsilon: float
    n_train: int
    n_holdout: int
    dp_auc: list[float]
    baseline_auc: float
    baseline_ci: tuple[float, float]
    dp_ci: tuple[float, float]  # DeLong's interval of the first repeat
    job_s: list[float]
    baseline_fit_s: float

    @property
    def dp_mean(self) -> float:
        return statistics.fmean(self.dp_auc)

    def line(self) -> str:
        spread = f"{min(self.dp_auc):.3f}-{max(self.dp_auc):.3f}" if len(self.dp_auc) > 1 else "-"
        return (
            f"{self.table} | {SHORT.get(self.family, self.family)} | {self.epsilon:g} | "
            f"**{self.dp_mean:.3f}** | {spread} | {self.dp_ci[0]:.3f}-{self.dp_ci[1]:.3f} | "
            f"{self.baseline_auc:.3f} ({self.baseline_ci[0]:.3f}-{self.baseline_ci[1]:.3f}) | "
            f"{self.dp_mean / self.baseline_auc:.2f} | {statistics.fmean(self.job_s):.2f} | "
            f"{self.baseline_fit_s:.2f}"
        )


MODEL_HEADER = (
    "table | family | epsilon | DP AUC (mean) | DP AUC range | DP AUC 95% CI (run 1) | "
    "baseline AUC (95% CI) | DP / baseline | DP job s | baseline fit s\n"
    "---|---|---|---:|---|---|---|---:|---:|---:"
)


def dp_model_row(
    table: Table,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    family: str,
    epsilon: float,
    repeats: int,
    options: dict[str, Any] | None = None,
) -> ModelRow:
    """Train `family` at `epsilon` `repeats` times with the portal's code; score DP and baseline."""
    from sklearn.base import clone

    from generation.modeling import ModelSpec, train_dp_model
    from validation.metrics.model import auc_with_interval

    spec = ModelSpec(
        family=family,
        target=table.outcome,
        features=features_of(table),
        epsilon=epsilon,
        column_specs=column_specs(table),
        options=options or {},
    )
    dp_auc: list[float] = []
    job_s: list[float] = []
    dp_ci: tuple[float, float] = (float("nan"), float("nan"))
    baseline: dict[str, Any] = {}
    baseline_fit_s = float("nan")
    for repeat in range(repeats):
        started = time.perf_counter()
        model = train_dp_model(train, spec, seed=0)
        job_s.append(time.perf_counter() - started)
        scored = holdout[model.labelled(holdout)]
        y = model.labels(scored)
        result = auc_with_interval(y, model.predict_proba(scored))
        dp_auc.append(float(result["value"]))
        if repeat == 0:
            dp_ci = (float(result["ci"][0]), float(result["ci"][1]))
            baseline = auc_with_interval(y, model.baseline_proba(scored))
            # The baseline's fit alone, on the same encoded rows (its encoder holds declarations only).
            known = train[model.labelled(train)]
            rows, labels = model.model_input(known), model.labels(known)
            again = clone(model._baseline)
            started = time.perf_counter()
            again.fit(rows, labels)
            baseline_fit_s = time.perf_counter() - started
    return ModelRow(
        table=table.name,
        family=family,
        epsilon=epsilon,
        n_train=len(train),
        n_holdout=len(holdout),
        dp_auc=dp_auc,
        baseline_auc=float(baseline["value"]),
        baseline_ci=(float(baseline["ci"][0]), float(baseline["ci"][1])),
        dp_ci=dp_ci,
        job_s=job_s,
        baseline_fit_s=baseline_fit_s,
    )


# --- part 2: federated study ----------------------------------------------------------------------


def _store_encrypted(frame: pd.DataFrame, path: Path) -> None:
    from generation.crypto import encrypt_chunks

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    path.write_bytes(b"".join(encrypt_chunks([buffer.getvalue()])))


def _data_key() -> str:
    """A data key for this run's site files (Django settings hold nothing else in this process)."""
    from django.conf import settings

    from generation.crypto import generate_key

    if not settings.configured:
        settings.configure(SYNTHGATE_DATA_KEY=generate_key())
    return str(settings.SYNTHGATE_DATA_KEY)


def federated_sites(
    frame: pd.DataFrame, folder: Path, key: str
) -> tuple[list[Any], pd.DataFrame, pd.DataFrame]:
    """Three equal sites, each 80/20 training/holdout, stored encrypted; returns the site configs
    and the pooled training and holdout rows (for the centralized models)."""
    from federation.runtime import SiteConfig

    order = np.random.default_rng(0).permutation(len(frame))
    sites, trains, holdouts = [], [], []
    for index, (name, part) in enumerate(zip(SITES, np.array_split(order, len(SITES)), strict=True)):
        train, holdout = split(frame.iloc[part].reset_index(drop=True), seed=index + 1)
        train_path, holdout_path = folder / f"{name}-train.enc", folder / f"{name}-holdout.enc"
        _store_encrypted(train, train_path)
        _store_encrypted(holdout, holdout_path)
        sites.append(
            SiteConfig(
                name=name,
                train_path=str(train_path),
                holdout_path=str(holdout_path),
                storage_env={"SYNTHGATE_DATA_KEY": key},
            )
        )
        trains.append(train)
        holdouts.append(holdout)
    return sites, pd.concat(trains, ignore_index=True), pd.concat(holdouts, ignore_index=True)


def centralized(
    encoding: dict[str, Any], train: pd.DataFrame, holdout: pd.DataFrame, *, epochs: int, learning_rate: float
) -> dict[str, dict[str, Any]]:
    """The same numpy model trained on the pooled rows, and scikit-learn's LogisticRegression."""
    from sklearn.linear_model import LogisticRegression

    from federation.runtime.app.sgfl.task import encode, initial_parameters, predict_proba
    from federation.runtime.app.sgfl.task import train as fit
    from validation.metrics.model import auc_with_interval

    X, y = encode(train, encoding)
    X_hold, y_hold = encode(holdout, encoding)
    started = time.perf_counter()
    parameters = fit(initial_parameters(X.shape[1]), X, y, epochs=epochs, learning_rate=learning_rate)
    numpy_s = time.perf_counter() - started
    started = time.perf_counter()
    sklearn_model = LogisticRegression(max_iter=1000).fit(X, y)
    sklearn_s = time.perf_counter() - started
    return {
        "numpy": {"auc": auc_with_interval(y_hold, predict_proba(parameters, X_hold)), "s": numpy_s},
        "sklearn": {
            "auc": auc_with_interval(y_hold, sklearn_model.predict_proba(X_hold)[:, 1]),
            "s": sklearn_s,
        },
    }


def round_times(timings: dict[str, float]) -> tuple[float, float, list[float]]:
    """(start-up s, health check s, [s per round]) from run_study's timings (seconds since start)."""
    startup = timings.get("processes_started_s", float("nan"))
    health = timings.get("health_s", startup)
    marks = sorted((int(k.split("_")[1]), v) for k, v in timings.items() if k.startswith("round_"))
    per_round, previous = [], health
    for _, mark in marks:
        per_round.append(mark - previous)
        previous = mark
    return startup, health - startup, per_round


def federated_study(
    name: str,
    sites: list[Any],
    encoding: dict[str, Any],
    holdout: pd.DataFrame,
    run_dir: Path,
    *,
    rounds: int,
    local_epochs: int,
    learning_rate: float,
    dp: bool,
) -> dict[str, Any]:
    from federation.runtime import StudyRunConfig, run_study
    from federation.runtime.app.sgfl.task import encode, predict_proba
    from validation.metrics.model import auc_with_interval

    config = StudyRunConfig(
        run_dir=run_dir,
        sites=sites,
        encoding=encoding,
        rounds=rounds,
        # Two of three: SecAgg+ needs its reconstruction threshold (max(2, min_sites)) below the
        # number of shares (the sites); with min_sites = 3 Flower refuses the workflow.
        min_sites=2,
        local_epochs=local_epochs,
        learning_rate=learning_rate,
        clipping_norm=1.0 if dp else None,
        noise_multiplier=1.1 if dp else 0.0,
        delta=1e-5,
        secure_aggregation=dp,
        dropout_policy="quorum",
        seed=7,
    )
    result = run_study(config, on_event=lambda event: None, should_cancel=lambda: False, timeout_s=900)
    out: dict[str, Any] = {
        "name": name,
        "status": result.status,
        "error": result.error,
        "epsilon": result.epsilon,
    }
    out["startup_s"], out["health_s"], out["round_s"] = round_times(result.timings)
    out["total_s"] = result.timings.get("total_s", float("nan"))
    if result.status == "completed":
        X_hold, y_hold = encode(holdout, encoding)
        out["auc"] = auc_with_interval(y_hold, predict_proba(result.parameters, X_hold))
        site_auc = [m["auc"]["value"] for m in result.site_metrics.values() if m.get("auc")]
        out["site_auc"] = statistics.fmean(site_auc) if site_auc else float("nan")
    return out


# --- report -----------------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _ci(result: dict[str, Any]) -> str:
    return f"{result['value']:.3f} ({result['ci'][0]:.3f}-{result['ci'][1]:.3f})"


def run_federated(args: argparse.Namespace) -> None:
    table = TABLES[FEDERATED_TABLE]
    encoding = federated_encoding(table)
    key = _data_key()
    with tempfile.TemporaryDirectory(prefix="sg-bench-models-") as tmp:
        folder = Path(tmp)
        sites, train, holdout = federated_sites(load(FEDERATED_TABLE), folder, key)
        epochs = args.rounds * args.local_epochs
        central = centralized(encoding, train, holdout, epochs=epochs, learning_rate=args.learning_rate)
        print(
            f"\n## Federated study: {FEDERATED_TABLE} dealt into {len(sites)} sites "
            f"({len(train)} training / {len(holdout)} holdout rows in all), {args.rounds} rounds x "
            f"{args.local_epochs} local epochs, learning rate {args.learning_rate:g}; load {loadavg()}"
        )
        print(
            f"centralized, same numpy model, {epochs} epochs on the pooled training rows: AUC "
            f"{_ci(central['numpy']['auc'])}, {central['numpy']['s']:.2f} s"
        )
        print(
            f"centralized, scikit-learn LogisticRegression on the pooled training rows: AUC "
            f"{_ci(central['sklearn']['auc'])}, {central['sklearn']['s']:.2f} s"
        )
        print(
            "\nstudy | status | epsilon per site | AUC pooled holdout (95% CI) | vs centralized numpy | "
            "vs sklearn | mean site AUC | start-up s | submit + health s | s per round (mean, max) | total s"
        )
        print("---|---|---:|---|---:|---:|---:|---:|---:|---|---:")
        variants = [("DP + SecAgg+", True), ("no DP", False)]
        for name, dp in variants:
            before = loadavg()
            out = federated_study(
                name,
                sites,
                encoding,
                holdout,
                folder / name.replace(" ", "-").replace("+", ""),
                rounds=args.rounds,
                local_epochs=args.local_epochs,
                learning_rate=args.learning_rate,
                dp=dp,
            )
            rounds = out["round_s"]
            per_round = f"{statistics.fmean(rounds):.1f}, {max(rounds):.1f}" if rounds else "-"
            if out["status"] == "completed":
                auc = out["auc"]["value"]
                figures = (
                    f"**{_ci(out['auc'])}** | {auc / central['numpy']['auc']['value']:.2f} | "
                    f"{auc / central['sklearn']['auc']['value']:.2f} | {out['site_auc']:.3f}"
                )
            else:
                figures = f"{out['error'][:80]} | - | - | -"
            epsilon = "none (no noise)" if not dp else f"{out['epsilon']:.2f}"
            print(
                f"{name} | {out['status']} | {epsilon} | {figures} | {out['startup_s']:.1f} | "
                f"{out['health_s']:.1f} | {per_round} | {out['total_s']:.1f}",
                flush=True,
            )
            print(f"  (load before {before}, after {loadavg()})", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tables", nargs="+", default=["flchain", "actg175", "gbsg2", "whas500"], choices=list(TABLES)
    )
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(SHORT))
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.5, 1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3, help="DP fits per cell (fresh noise each)")
    parser.add_argument("--skip-dp", action="store_true", help="only the federated studies")
    parser.add_argument("--skip-federated", action="store_true", help="only the DP models")
    parser.add_argument("--rounds", type=int, default=5, help="federated rounds")
    parser.add_argument("--local-epochs", type=int, default=50, help="per round (the portal allows 1-50)")
    parser.add_argument("--learning-rate", type=float, default=2.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    print(f"# bench/models.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# {machine()}; load average {loadavg()}")
    started = time.perf_counter()
    if not args.skip_dp:
        print(
            f"\n## DP models: {args.repeats} DP fit(s) per cell, AUC on the 20% holdout; "
            "baseline = the same family without DP, same encoder and rows (seed 0)"
        )
        print(MODEL_HEADER)
        for name in args.tables:
            table = TABLES[name]
            train, holdout = split(load(name))
            for family in args.families:
                for epsilon in args.epsilons:
                    row = dp_model_row(
                        table, train, holdout, family=family, epsilon=epsilon, repeats=args.repeats
                    )
                    print(row.line(), flush=True)
        print(f"(DP models: {time.perf_counter() - started:.0f} s; load average {loadavg()})")
    if not args.skip_federated:
        run_federated(args)
    print(f"\n# done in {time.perf_counter() - started:.0f} s; load average {loadavg()}")


if __name__ == "__main__":
    main()
