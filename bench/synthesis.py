"""Synthesis benchmark: fit+sample time and peak memory per synthesizer, beside the raw SDV call.

Not part of the test run. Prints figures; docs/benchmarks.md records a run.

    .venv/bin/python bench/synthesis.py                      # 100k rows, every case, 2 epochs
    .venv/bin/python bench/synthesis.py --rows 20000 --synthesizers gaussian_copula,dp_copula
    .venv/bin/python bench/synthesis.py --synthesizers ctgan,tvae --repeat 2   # on a busy machine

Data: portal/demo/flchain.csv (7,874 x 11) grown to --rows by resampling rows with
replacement and jittering: each numeric column gets Gaussian noise with sd = 5% of that column's
std, is clipped to the column's observed range, and whole-number columns are rounded; categorical
values and missing cells are copied as drawn. (A benchmark may read ranges from its own data: no
release comes out of it.)

Each measurement runs in a fresh Python subprocess, which imports what it needs, loads the grown
table, then reports its wall-clock fit+sample time and its peak resident memory (VmHWM from
/proc/self/status). tracemalloc would miss numpy's and torch's native allocations. The baseline
line is a subprocess that imports everything and loads the table but fits nothing.

"ours" is the SynthGate synthesizer's fit_sample; "raw" is the equivalent direct SDV 2.0 call
(same metadata, same settings, one sample call); overhead = ours / raw. DP synthesizers have no raw
SDV peer. `dp_mst` runs only in an environment with smartnoise-synth (docs/synthesizers.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCE = ROOT / "portal" / "demo" / "flchain.csv"
SEED = 20261122
JITTER = 0.05
WITH_RAW_PEER = ("gaussian_copula", "ctgan", "tvae")
ALL_CASES = ("gaussian_copula", "ctgan", "tvae", "dp_copula", "dp_mst")
DEFAULT_CASES = ("gaussian_copula", "ctgan", "tvae", "dp_copula")  # dp_mst needs smartnoise-synth
DP_EPSILON = "1"

CHAPTERS = (
    "Circulatory", "Neoplasms", "Respiratory", "Mental", "Nervous", "Digestive", "Genitourinary",
    "Endocrine", "External Causes", "Musculoskeletal", "Ill Defined", "Infectious", "Blood",
    "Skin", "Congenital", "Injury and Poisoning",
)  # fmt: skip
# (name, kind, lower, upper, categories, nullable): the declarations a steward would make for flchain.
DECLARED: list[tuple[str, str, float | None, float | None, tuple[str, ...] | None, bool]] = [
    ("age", "numeric", 50, 105, None, False),
    ("chapter", "categorical", None, None, CHAPTERS, True),
    ("creatinine", "numeric", 0, 11, None, True),
    ("flc.grp", "numeric", 1, 10, None, False),
    ("kappa", "numeric", 0, 25, None, False),
    ("lambda", "numeric", 0, 30, None, False),
    ("mgus", "categorical", None, None, ("no", "yes"), False),
    ("sample.yr", "numeric", 1995, 2003, None, False),
    ("sex", "categorical", None, None, ("F", "M"), False),
    ("death", "boolean", None, None, ("0", "1"), False),
    ("futime", "numeric", 0, 5500, None, False),
]
INTEGER_COLUMNS = ["age", "flc.grp", "sample.yr", "futime"]


def grow(rows: int, path: Path) -> None:
    """Resample flchain to `rows` rows with jitter (see the module docstring)."""
    import numpy as np
    import pandas as pd

    source = pd.read_csv(SOURCE)
    rng = np.random.default_rng(SEED)
    grown = source.sample(n=rows, replace=True, random_state=SEED).reset_index(drop=True)
    for column in source.select_dtypes("number").columns:
        values = source[column].dropna()
        noisy = grown[column] + rng.normal(0.0, JITTER * values.std(), size=rows)
        noisy = noisy.clip(values.min(), values.max())
        if (values == values.round()).all():
            noisy = noisy.round()
        grown[column] = noisy.where(grown[column].notna())
    grown.to_pickle(path)


def specs() -> list[Any]:
    from generation.synthesizers import ColumnSpec

    return [
        ColumnSpec(n, k, lower=lo, upper=hi, categories=c, nullable=nl) for n, k, lo, hi, c, nl in DECLARED
    ]


def peak_rss_mib(pid: str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0  # a kernel thread, or a process that just exited


def children_peak_mib() -> float:
    """Sum of the peaks of this process's live children: ctgan's DataTransformer runs joblib (loky)
    worker processes, which outlive the call (idle timeout) and whose memory VmHWM of the parent
    does not include."""
    total = 0.0
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == me:  # field 4 of /proc/PID/stat: the parent pid
                total += peak_rss_mib(stat.parent.name)
        except (OSError, IndexError):
            continue
    return total


def run_ours(name: str, frame: Any, rows: int, epochs: int) -> Any:
    from generation.synthesizers import synthesizer_for

    if name in ("dp_copula", "dp_mst"):
        synth = synthesizer_for(name, epsilon=DP_EPSILON, options={"integer_columns": INTEGER_COLUMNS})
    elif name in ("ctgan", "tvae"):
        synth = synthesizer_for(name, options={"epochs": epochs, "batch_size": 500})
    else:
        synth = synthesizer_for(name)
    return synth.fit_sample(frame, columns=specs(), rows=rows, seed=1, progress=lambda f, s: None)


def run_raw(name: str, frame: Any, rows: int, epochs: int) -> Any:
    """The equivalent SDV 2.0 calls, without SynthGate's wrapper."""
    from sdv import single_table

    from generation.synthesizers.sdv_backend import TABLE, build_metadata

    metadata = build_metadata(specs())
    if name == "gaussian_copula":
        synth = single_table.GaussianCopulaSynthesizer(metadata, default_distribution="norm")
    elif name == "ctgan":
        synth = single_table.CTGANSynthesizer(metadata, epochs=epochs, batch_size=500, enable_gpu=False)
    else:
        synth = single_table.TVAESynthesizer(metadata, epochs=epochs, batch_size=500, enable_gpu=False)
    synth.fit({TABLE: frame})
    synth._set_random_state(1)
    return synth.sample(num_rows=rows)[TABLE]


def worker(case: str, variant: str, data: Path, rows: int, epochs: int) -> None:
    """One measurement, in its own process. Prints one JSON line."""
    import pandas as pd
    import sdv.single_table  # noqa: F401  (imported before the baseline, like the job worker has)
    import torch  # noqa: F401

    import generation.synthesizers  # noqa: F401

    frame = pd.read_pickle(data)
    loaded_mib = peak_rss_mib()
    started = time.perf_counter()
    if variant == "baseline":
        out_rows = 0
    else:
        out = (run_ours if variant == "ours" else run_raw)(case, frame, rows, epochs)
        out_rows = len(out)
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "peak_mib": peak_rss_mib(), "children_mib": children_peak_mib()}
    print(json.dumps({**result, "loaded_mib": loaded_mib, "rows": out_rows}))


def measure(case: str, variant: str, data: Path, rows: int, epochs: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "XDG_DATA_HOME": os.environ.get("XDG_DATA_HOME", tempfile.gettempdir() + "/sg-bench-xdg"),
    }
    command = [sys.executable, __file__, "--worker", case, variant, str(data), str(rows), str(epochs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{case}/{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        f"{model}, {os.cpu_count()} cores, {memory_kib / 2**20:.1f} GiB, Python {platform.python_version()}"
    )


def report_line(case: str, variant: str, result: dict[str, Any], baseline: dict[str, Any]) -> str:
    grown = result["peak_mib"] - baseline["peak_mib"]
    return (
        f"{case:16} {variant:8} {result['seconds']:9.1f} s {result['peak_mib']:9.0f} MiB {grown:+9.0f} MiB"
        f" {result['children_mib']:9.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows to grow flchain to, and to sample")
    parser.add_argument("--synthesizers", default=",".join(DEFAULT_CASES), help="comma-separated cases")
    parser.add_argument("--epochs", type=int, default=2, help="CTGAN/TVAE epochs (kept small on purpose)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant, alternating; fastest kept")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, variant, data, rows, epochs = args.worker
        worker(case, variant, Path(data), int(rows), int(epochs))
        return
    cases = [c.strip() for c in args.synthesizers.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(ALL_CASES))
    if unknown:
        parser.error(f"unknown synthesizer(s) {', '.join(unknown)}; choose from {', '.join(ALL_CASES)}")
    run(cases, rows=args.rows, epochs=args.epochs, repeat=max(1, args.repeat))


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: r["seconds"])


def run(cases: list[str], *, rows: int, epochs: int, repeat: int) -> None:
    print(f"machine: {machine()}")
    print(f"data: flchain.csv 7,874 rows grown to {rows:,} by resampling rows with replacement; numeric")
    print(f"      columns jittered by N(0, ({JITTER} x column std)^2), clipped to the observed range,")
    print("      whole-number columns rounded; categories and missing cells copied. 11 columns.")
    print(f"sampled rows: {rows:,}; CTGAN/TVAE epochs: {epochs} (batch 500); GaussianCopula 'norm' marginals")
    print(
        f"DP: epsilon {DP_EPSILON}; dp_copula 20 bins, dp_mst 10 bins and delta 1e-9; integer columns declared"
    )
    print("each line: a fresh subprocess; time = fit+sample wall clock; peak = its VmHWM; growth = peak -")
    print("baseline; children = summed VmHWM of its live child processes (joblib workers), not in peak")
    print(f"runs per variant: {repeat} (ours and raw alternate; the fastest run of each is shown)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "grown.pkl"
        grow(rows, data)
        baseline = measure("baseline", "baseline", data, rows, epochs)
        print(f"\n{'case':16} {'variant':8} {'time':>11} {'peak':>13} {'growth':>13} {'children':>13}")
        print(report_line("(imports+data)", "baseline", baseline, baseline))
        for case in cases:
            variants = ("ours", "raw") if case in WITH_RAW_PEER else ("ours",)
            runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
            for _ in range(repeat):
                for variant in variants:
                    runs[variant].append(measure(case, variant, data, rows, epochs))
            ours = fastest(runs["ours"])
            print(report_line(case, "ours", ours, baseline), flush=True)
            if case not in WITH_RAW_PEER:
                print(f"{case:16} {'raw':8} {'(no raw SDV peer: DP synthesizer)':>40}")
                continue
            raw = fastest(runs["raw"])
            print(report_line(case, "raw", raw, baseline))
            print(
                f"{case:16} {'overhead':8} {ours['seconds'] / raw['seconds']:9.2f} x "
                f"{ours['peak_mib'] / raw['peak_mib']:9.2f} x (ours / raw)",
                flush=True,
            )
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
