"""Release quality benchmark: the default all-column request on each shared table, through the gate.

Not part of the test run (tests/test_shared_datasets.py keeps a version with fidelity floors in the suite).
Prints one block per table; docs/benchmarks.md ("Releases on the shared tables") records a run.

    .venv/bin/python bench/release_quality.py                       # all five tables
    .venv/bin/python bench/release_quality.py --tables pbc gbsg2
    .venv/bin/python bench/release_quality.py --synthesizer ctgan --seed 7
    .venv/bin/python bench/release_quality.py --synthesizer dp_copula --epsilon 1
    .venv/bin/python bench/release_quality.py --bakeoff --candidates gaussian_copula ctgan tvae
    .venv/bin/python bench/release_quality.py --tables --csv /path/to/cohort.csv:death   # your own table

Protocol. A throwaway database and storage folder (a temporary SYNTHGATE_VAR_DIR, migrated here) so
the run touches nothing of a real install. Each table goes through the services a browser would
call, as a new user would: a steward registers the CSV (the intake profiles it, splits off the
locked 20% holdout and suggests classifications), declares the study outcome, accepts every other
suggestion and signs off; a scientist files the default request (the request form's defaults:
synthesizer, 1,000 rows, medium fidelity, internal audience) for every column that is not a direct
identifier; a privacy officer approves; the pipeline task the worker runs synthesizes, validates and
judges it under the tier the policy assigned. Printed per table, all read from the validation report
the portal stores (the same figures the release page shows):
- the gate's verdict and the checks that failed or did not run;
- SDMetrics-style quality: column shapes, column pair trends (SDMetrics' own pair formula) and their
  mean, which is how SDMetrics' QualityReport scores a table;
- the missingness-pattern similarity the gate judges (relative to as many real holdout rows), with
  the raw figure (1 - total variation distance between the training and synthetic distributions of
  per-row missing-cell patterns) and the holdout rows' own raw figure;
- TSTR / TRTR AUC for the declared outcome on the holdout;
- exact copies, and the three anonymeter risks with their 95% confidence intervals (validation's
  log-ratio interval, then anonymeter's own for the same attacks, the attacks a side and the
  successes on training / holdout rows);
- wall-clock seconds for synthesis and for validation (the worker's own timings), and in total.
With --bakeoff each table is also filed as a bake-off of --candidates (default: gaussian_copula and
ctgan; deep models train within the tier's time budget); every candidate is fitted and validated by
the pipeline task and printed, and the recommended one is published.
pbc's `status` has three values (censored, transplant, death): its outcome is not binary, so TSTR is
not applicable there and none is declared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The five shared tables and the outcome each steward declares (None: no binary outcome).
TABLES: dict[str, tuple[Path, str | None]] = {
    "flchain": (ROOT / "portal" / "demo" / "flchain.csv", "death"),
    "actg175": (ROOT / "tests" / "data" / "actg175.csv", "cens"),
    "gbsg2": (ROOT / "tests" / "data" / "gbsg2.csv", "cens"),
    "whas500": (ROOT / "tests" / "data" / "whas500.csv", "fstat"),
    "pbc": (ROOT / "tests" / "data" / "pbc.csv", None),
}


def setup_django(var_dir: Path) -> None:
    os.environ["SYNTHGATE_ENV"] = "test"
    os.environ["SYNTHGATE_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "SYNTHGATE_STORAGE_DIR"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def personas() -> dict[str, Any]:
    from core.roles import Role
    from portal.models import Team, User

    team = Team.objects.create(name="Bench team")
    made = {}
    for username, role in (
        ("steward", Role.DATA_STEWARD),
        ("scientist", Role.DATA_SCIENTIST),
        ("officer", Role.PRIVACY_OFFICER),
    ):
        made[username] = User.objects.create(
            username=username, role=role, team=team if role == Role.DATA_SCIENTIST else None
        )
    return made


def signed_off(
    name: str,
    path: Path,
    outcome: str | None,
    people: dict[str, Any],
    declarations: list[dict[str, Any]] | None = None,
) -> tuple[Any, list[str]]:
    """Register the table as a steward would (declaring its outcome and, with --declarations, the
    columns' domains, accepting the intake's other suggestions) and sign it off; the dataset and
    every column but the direct identifiers."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="text/csv")
    dataset = dataset_register(actor=people["steward"], name=name, uploaded_file=upload, epsilon_cap="1")
    if outcome:
        dataset_update_columns(
            actor=people["steward"], dataset_id=dataset.pk, changes=[{"name": outcome, "outcome": True}]
        )
    if declarations:
        dataset_update_columns(actor=people["steward"], dataset_id=dataset.pk, changes=declarations)
    dataset = dataset_sign_off(actor=people["steward"], dataset_id=dataset.pk)
    direct = set(dataset.columns.filter(classification="direct_identifier").values_list("name", flat=True))
    columns = [
        c for c in dataset.columns.order_by("position").values_list("name", flat=True) if c not in direct
    ]
    return dataset, columns


def filed_and_approved(people: dict[str, Any], dataset: Any, columns: list[str], **fields: Any) -> Any:
    """A scientist files and submits the request (internal audience); a privacy officer approves."""
    from approvals.services import RequestInput, request_create, request_decide, request_submit

    draft = request_create(
        actor=people["scientist"],
        data=RequestInput(
            dataset_id=dataset.pk,
            intended_use="Notebook prototyping",
            audience="internal",
            columns=columns,
            **fields,
        ),
    )
    request = request_submit(actor=people["scientist"], request_id=draft.pk)
    request_decide(actor=people["officer"], request_id=request.pk, decision="approve", comment="bench")
    request.refresh_from_db()
    return request


def run_table(
    name: str, path: Path, outcome: str | None, people: dict[str, Any], args: Any
) -> dict[str, Any]:
    from approvals.forms import DEFAULT_SYNTHESIZER
    from catalog.pipeline import pipeline_run
    from generation.models import SynthesisJob

    started = time.perf_counter()
    dataset, columns = signed_off(name, path, outcome, people, args.declared.get(name))
    request = filed_and_approved(
        people,
        dataset,
        columns,
        title=f"{name}: all columns",
        purpose="Prototype a risk model before applying for the real data.",
        synthesizer=args.synthesizer or DEFAULT_SYNTHESIZER,
        rows=args.rows,
        epsilon=args.epsilon,
    )
    SynthesisJob.objects.filter(pk=request.job_id).update(seed=args.seed)
    verdict = pipeline_run(job_id=request.job_id)
    total = time.perf_counter() - started
    job = SynthesisJob.objects.select_related("validation").get(pk=request.job_id)
    return summarize(name, job, verdict, total, len(columns), dataset.training_rows)


def run_bakeoff(
    name: str, path: Path, outcome: str | None, people: dict[str, Any], args: Any
) -> list[dict[str, Any]]:
    """The same table as a bake-off: each candidate fitted and validated by the pipeline task, the
    recommended one (the best that passed) published through the release path."""
    from approvals.forms import parse_option_pairs
    from approvals.models import CandidateRun
    from catalog.pipeline import pipeline_run
    from catalog.services import bakeoff_choose
    from generation.models import SynthesisJob

    dataset, columns = signed_off(f"{name}-bakeoff", path, outcome, people, args.declared.get(name))
    # "gaussian_copula:distribution=norm" is a candidate with options.
    candidates = [
        {"synthesizer": synthesizer, "epsilon": None, "options": parse_option_pairs(pairs.replace(";", ","))}
        for synthesizer, _, pairs in (c.partition(":") for c in args.candidates)
    ]
    request = filed_and_approved(
        people,
        dataset,
        columns,
        title=f"{name}: bake-off",
        purpose="Pick the synthesizer that keeps the outcome signal.",
        synthesizer="",
        rows=args.rows,
        candidates=candidates,
    )
    results = []
    runs = list(CandidateRun.objects.filter(attempt__request_id=request.pk).order_by("index"))
    for run in runs:
        SynthesisJob.objects.filter(pk=run.job_id).update(seed=args.seed + run.index)
        started = time.perf_counter()
        verdict = pipeline_run(job_id=run.job_id)
        job = SynthesisJob.objects.select_related("validation").get(pk=run.job_id)
        results.append(
            summarize(
                f"{name} #{run.index}",
                job,
                verdict,
                time.perf_counter() - started,
                len(columns),
                dataset.training_rows,
            )
        )
    recommended = CandidateRun.objects.filter(attempt__request_id=request.pk, recommended=True).first()
    if recommended is not None:
        bakeoff_choose(actor=people["scientist"], request_id=request.pk, index=recommended.index)
        results[recommended.index]["verdict"] += " (recommended, published)"
    return results


def summarize(
    name: str, job: Any, verdict: str, total: float, columns: int, training_rows: int
) -> dict[str, Any]:
    report = job.validation
    metrics = report.metrics
    checks = report.checks
    failed = [
        f"{c['name']} ({fmt(c.get('value'))} vs {fmt(c.get('threshold'))}{'; ' + c['error'] if c.get('error') else ''})"
        for c in checks
        if c.get("status", "passed" if c.get("passed") else "failed") == "failed"
    ]
    not_run = [c["name"] for c in checks if c.get("status") == "not_run"]
    shapes = metrics.get("column_shape_similarity")
    # SDMetrics' pair formula; our own when no pair shows a trend by SDMetrics' binning.
    pairs = metrics.get("column_pair_trend_similarity_sdmetrics") or metrics.get(
        "column_pair_trend_similarity"
    )
    quality = (shapes + pairs) / 2 if shapes is not None and pairs is not None else shapes
    tstr = metrics.get("tstr") or {}
    anonymeter = metrics.get("anonymeter") or {}
    risks = {
        attack: ((anonymeter.get(attack) or {}).get("risk"), (anonymeter.get(attack) or {}).get("ci"))
        for attack in ("singling_out", "linkability", "inference")
    }
    # The interval's inputs, to compare it with anonymeter's own (issue 12): attacks a side,
    # successes on training and on holdout rows, and which secret the inference figure is for.
    risk_details = {attack: anonymeter.get(attack) or {} for attack in risks}
    return {
        "table": name,
        "columns": columns,
        "training_rows": training_rows,
        "synthesizer": job.synthesizer,
        "verdict": verdict,
        "failed": failed,
        "not_run": not_run,
        "shapes": shapes,
        "pairs": pairs,
        "quality": quality,
        "missingness": (metrics.get("missingness") or {}).get("pattern_similarity"),
        "missingness_raw": (metrics.get("missingness") or {}).get("pattern_similarity_raw"),
        "missingness_holdout": (metrics.get("missingness") or {}).get("holdout_pattern_similarity"),
        "tstr_ratio": tstr.get("ratio"),
        "tstr_model": tstr.get("model"),
        "prevalence": metrics.get("outcome") or {},
        "tstr": tstr.get("auc_tstr"),
        "trtr": tstr.get("auc_trtr"),
        "exact_copies": metrics.get("exact_copies"),
        "risks": risks,
        "risk_details": risk_details,
        "validation_s": suite_seconds(metrics.get("seconds") or {}),
        "metric_seconds": dict(metrics.get("seconds") or {}),
        "total_s": total,
    }


# Timed inside the "anonymeter" metric (validation.suite guards each attack within it): counting
# them again double-counted the attacks in the suite's total.
NESTED_IN_ANONYMETER = ("singling_out", "linkability", "inference")


def suite_seconds(seconds: dict[str, float]) -> float | None:
    """The validation suite's seconds: every timed metric once."""
    if not seconds:
        return None
    nested = NESTED_IN_ANONYMETER if "anonymeter" in seconds else ()
    return sum(value for name, value in seconds.items() if name not in nested)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _risk_detail(r: dict[str, Any], attack: str) -> str:
    """Anonymeter's own interval for the same attacks, the attacks a side and the successes
    (training / holdout); for inference, the secret shown."""
    detail = (r.get("risk_details") or {}).get(attack) or {}
    parts = []
    if detail.get("ci_anonymeter"):
        low, high = detail["ci_anonymeter"]
        parts.append(f"anonymeter's [{fmt(low)}, {fmt(high)}]")
    if detail.get("n_attacks"):
        parts.append(f"{detail['n_attacks']} attacks a side")
    if detail.get("successes"):
        parts.append(f"successes {fmt(detail['successes'][0], 0)} / {fmt(detail['successes'][1], 0)}")
    if detail.get("secret"):
        parts.append(f"secret {detail['secret']}")
    return f" ({'; '.join(parts)})" if parts else ""


def print_result(r: dict[str, Any]) -> None:
    print(
        f"\n## {r['table']} ({r['training_rows']} training rows x {r['columns']} columns, {r['synthesizer']})"
    )
    print(f"  gate verdict            {r['verdict']}")
    print(f"  failed checks           {', '.join(r['failed']) or 'none'}")
    print(f"  checks not run          {', '.join(r['not_run']) or 'none'}")
    print(f"  quality (shapes, pairs) {fmt(r['quality'])} ({fmt(r['shapes'])}, {fmt(r['pairs'])})")
    print(
        f"  missingness patterns    {fmt(r['missingness'])} (raw {fmt(r.get('missingness_raw'))}; "
        f"real holdout rows {fmt(r.get('missingness_holdout'))})"
    )
    prevalence = r.get("prevalence") or {}
    print(
        f"  TSTR / TRTR             {fmt(r['tstr_ratio'])} ({fmt(r['tstr'])} / {fmt(r['trtr'])}; "
        f"{r.get('tstr_model') or 'no model'}; outcome share training {fmt(prevalence.get('training'))}, "
        f"release {fmt(prevalence.get('synthetic'))})"
    )
    print(f"  exact copies            {fmt(r['exact_copies'])}")
    for attack, (risk, ci) in r["risks"].items():
        interval = f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "n/a"
        print(f"  {attack + ' risk':<23} {fmt(risk)} {interval}{_risk_detail(r, attack)}")
    print(f"  seconds                 total {r['total_s']:.1f}; validation {fmt(r['validation_s'], 1)}")
    slowest = sorted((r.get("metric_seconds") or {}).items(), key=lambda item: -item[1])[:6]
    if slowest:
        print(f"  slowest metrics (s)     {', '.join(f'{name} {spent:.1f}' for name, spent in slowest)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", nargs="*", choices=list(TABLES), default=list(TABLES))
    parser.add_argument(
        "--csv",
        nargs="*",
        default=[],
        metavar="PATH[:OUTCOME]",
        help="also run your own table (a hospital's, say), with its binary outcome column if any",
    )
    parser.add_argument("--synthesizer", default=None, help="default: the request form's default")
    parser.add_argument(
        "--epsilon",
        default=None,
        help="for a DP --synthesizer: the epsilon requested (the dataset's cap is 1)",
    )
    parser.add_argument("--rows", type=int, default=1000, help="rows requested (the form's default: 1000)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--bakeoff",
        action="store_true",
        help="also run each table as a bake-off of --candidates and publish the recommended one",
    )
    parser.add_argument(
        "--candidates",
        nargs="*",
        default=["gaussian_copula", "ctgan"],
        help="synthesizer[:name=value;name=value] per candidate, e.g. gaussian_copula:distribution=norm",
    )
    parser.add_argument(
        "--declarations",
        type=Path,
        default=None,
        metavar="JSON",
        help=(
            "a steward's declarations: {table name: [column changes as dataset_update_columns takes them]}, "
            "applied before sign-off (a DP --synthesizer needs every requested column's domain declared)"
        ),
    )
    args = parser.parse_args()
    args.declared = json.loads(args.declarations.read_text()) if args.declarations else {}
    with tempfile.TemporaryDirectory(prefix="sg-release-quality-") as tmp:
        setup_django(Path(tmp))
        people = personas()
        print(
            f"# Release quality, {date.today()}, {platform.node()} ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
        )
        results = []
        tables = [(name, *TABLES[name]) for name in args.tables]
        for spec in args.csv:
            csv_path, _, declared = spec.partition(":")
            tables.append((Path(csv_path).stem, Path(csv_path), declared or None))
        for name, path, outcome in tables:
            result = run_table(name, path, outcome, people, args)
            results.append(result)
            print_result(result)
            sys.stdout.flush()
            if args.bakeoff:
                for candidate in run_bakeoff(name, path, outcome, people, args):
                    results.append(candidate)
                    print_result(candidate)
                    sys.stdout.flush()
        print("\n| table | verdict | quality | missingness | TSTR/TRTR | copies | max risk upper CI | s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            uppers = [ci[1] for _, ci in r["risks"].values() if ci]
            print(
                f"| {r['table']} | {r['verdict']} | {fmt(r['quality'])} | {fmt(r['missingness'])} | "
                f"{fmt(r['tstr_ratio'])} | {fmt(r['exact_copies'])} | {fmt(max(uppers) if uppers else None)} | "
                f"{r['total_s']:.0f} |"
            )


if __name__ == "__main__":
    main()
