"""Federated studies on Flower's deployment engine: real SuperLink/SuperNode processes.

The tests that start processes are marked `services`: they run in the PostgreSQL/Redis stage of
scripts/test.sh (required under CI=true) and are deselected, not skipped, in the SQLite stage.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from opacus.privacy_analysis import compute_rdp, get_privacy_spent

from federation.runtime import StudyRunConfig, run_study
from federation.runtime.accounting import ORDERS, SiteLevelAccountant
from federation.runtime.app.sgfl.task import (
    encode,
    parameters_sha256,
    site_evaluation,
    spec_hash,
    train,
    update_norm,
)
from federation.runtime.tests.conftest import SPEC, clinical_table
from federation.runtime.validation import validate_round

NOISE, DELTA = 1.1, 1e-5


def study(run_dir: Path, sites: list[Any], **overrides: Any) -> StudyRunConfig:
    values: dict[str, Any] = {
        "run_dir": run_dir,
        "sites": sites,
        "encoding": SPEC,
        "rounds": 2,
        "min_sites": 2,
        "local_epochs": 20,
        "learning_rate": 0.5,
        "clipping_norm": 1.0,
        "noise_multiplier": NOISE,
        "delta": DELTA,
        "secure_aggregation": True,
        "dropout_policy": "quorum",
        "seed": 7,
    }
    values.update(overrides)
    return StudyRunConfig(**values)


def opacus_epsilon(rounds: int, sample_rate: float = 1.0) -> float:
    return float(get_privacy_spent(ORDERS, compute_rdp(sample_rate, NOISE, rounds, ORDERS), DELTA)[0])


# --- pure parts --------------------------------------------------------------------------------


def test_accountant_grows_with_rounds_and_equals_opacus() -> None:
    accountant = SiteLevelAccountant(noise_multiplier=NOISE, delta=DELTA)
    assert accountant.epsilon() == 0.0
    seen = []
    for rounds in range(1, 6):
        accountant.step(sampled_sites=3, total_sites=3)
        seen.append(accountant.epsilon())
        assert seen[-1] == pytest.approx(opacus_epsilon(rounds), rel=1e-12)
    assert all(later > earlier for earlier, later in zip(seen, seen[1:], strict=False))
    # Sampling two of three sites amplifies privacy: a smaller epsilon for the same rounds.
    sampled = SiteLevelAccountant(noise_multiplier=NOISE, delta=DELTA)
    sampled.step(sampled_sites=2, total_sites=3, random_sampling=True)
    assert sampled.epsilon() == pytest.approx(opacus_epsilon(1, 2 / 3), rel=1e-12)
    assert sampled.epsilon() < seen[0]
    # Asking every available site is not random sampling: no amplification is claimed.
    chosen = SiteLevelAccountant(noise_multiplier=NOISE, delta=DELTA)
    chosen.step(sampled_sites=2, total_sites=3)
    assert chosen.epsilon() == pytest.approx(seen[0], rel=1e-12)
    assert SiteLevelAccountant(noise_multiplier=0.0, delta=DELTA).epsilon() == 0.0
    no_noise = SiteLevelAccountant(noise_multiplier=0.0, delta=DELTA)
    no_noise.step(sampled_sites=3, total_sites=3)
    assert math.isinf(no_noise.epsilon())


def test_validation_rejects_norm_outlier_and_schema_failures() -> None:
    rng = np.random.default_rng(1)
    reference = [np.zeros(6), np.zeros(1)]
    honest = [[rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 1)] for _ in range(3)]
    poisoned = [50.0 * array for array in honest[0]]
    wrong_shape = [np.zeros(5), np.zeros(1)]
    not_finite = [np.full(6, np.nan), np.zeros(1)]
    verdicts = validate_round([*honest, poisoned, wrong_shape, not_finite], reference)
    assert [bool(v.reason) for v in verdicts] == [False, False, False, True, True, True]
    assert verdicts[3].reason.startswith("norm outlier")
    assert verdicts[4].reason.startswith("schema") and verdicts[5].reason.startswith("schema")
    # Two updates cannot say which one is odd: the rule needs three.
    assert not any(v.reason for v in validate_round([honest[0], poisoned], reference))


def test_encode_scales_bounds_and_one_hot() -> None:
    frame = clinical_table(np.random.default_rng(2), 50)
    frame.loc[0, "age"] = 200.0  # beyond the declared upper bound: clipped to 1
    frame.loc[1, "sex"] = "X"  # an undeclared category: all zeros
    X, y = encode(frame, SPEC)
    assert X.shape == (50, 6) and y.shape == (50,)
    assert X.min() >= 0.0 and X.max() <= 1.0 and X[0, 0] == 1.0
    assert X[1, 2:4].sum() == 0.0 and np.all(X[2:, 2:4].sum(axis=1) == 1.0)
    assert set(np.unique(y)) <= {0.0, 1.0}
    with pytest.raises(KeyError, match="smoker"):
        encode(frame.drop(columns=["smoker"]), SPEC)
    assert spec_hash(SPEC) == spec_hash(dict(reversed(list(SPEC.items()))))


def test_local_training_reduces_loss_and_hash_tracks_parameters() -> None:
    X, y = encode(clinical_table(np.random.default_rng(3), 300), SPEC)
    start = [np.zeros(X.shape[1]), np.zeros(1)]
    trained = train(start, X, y, epochs=50, learning_rate=0.5)
    assert update_norm(trained, start) > 0
    assert parameters_sha256(trained) != parameters_sha256(start)
    assert parameters_sha256(trained) == parameters_sha256([a.copy() for a in trained])


def test_validation_metrics_model_imports_without_django() -> None:
    """The ClientApp imports validation.metrics.model in the SuperNode's process, where Django is
    not configured: the module and everything it pulls in must be Django-free."""
    import subprocess
    import sys

    probe = (
        "import sys, validation.metrics.model, federation.runtime.app.sgfl.task;"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _gate_values(metrics: dict[str, Any], epsilon: float | None) -> list[dict[str, Any]]:
    """model_gate on a site's metrics; asserts every check was judged on a real value."""
    from validation.model_gate import MODEL_CHECK_NAMES, model_gate

    checks = model_gate(metrics, epsilon=epsilon).checks
    names = MODEL_CHECK_NAMES if epsilon is not None else MODEL_CHECK_NAMES[:-1]
    assert tuple(c["name"] for c in checks) == names
    for check in checks:
        assert check["status"] != "not_run" and check["value"] is not None and not check["error"], check
    return checks


def test_site_evaluation_gives_the_model_gate_every_value() -> None:
    """What a site's ClientApp computes (task.site_evaluation) is what model_gate reads: members =
    the site's training rows, non-members = its holdout, baseline = sklearn trained there."""
    rng = np.random.default_rng(4)
    train_xy = encode(clinical_table(rng, 400), SPEC)
    holdout_xy = encode(clinical_table(rng, 150), SPEC)
    start = [np.zeros(train_xy[0].shape[1]), np.zeros(1)]
    model = train(start, *train_xy, epochs=50, learning_rate=0.5)
    metrics = site_evaluation(model, train_xy, holdout_xy, seed=3)
    assert metrics["status"] == {"auc": "ok", "baseline": "ok", "calibration": "ok", "membership": "ok"}
    assert metrics["n_members"] == 400 and metrics["n_holdout"] == 150
    # The baseline is a real fit on the same rows: a useful model is close to it.
    assert metrics["baseline_auc"]["value"] > 0.6 and 0.8 < metrics["auc_ratio"] < 1.2
    checks = {c["name"]: c for c in _gate_values(metrics, epsilon=1.0)}
    assert checks["model_auc"]["passed"] and checks["model_membership_auc"]["passed"]
    # An untrained model (all 0.5) is judged too, and fails on utility, not for a missing key.
    blank = {c["name"]: c for c in _gate_values(site_evaluation(start, train_xy, holdout_xy), epsilon=None)}
    assert not blank["model_auc"]["passed"]
    assert site_evaluation(model, train_xy, holdout_xy, seed=3) == metrics  # seeded


# --- real runs: SuperLink + three SuperNodes as OS processes ------------------------------------


def _rounds(result: Any) -> list[dict[str, Any]]:
    return [event for event in result.events if event["type"] == "round"]


@pytest.mark.services
def test_three_supernodes_with_secagg_and_client_dp_complete(tmp_path: Path, site_configs: list[Any]) -> None:
    streamed: list[dict[str, Any]] = []
    started = time.monotonic()
    result = run_study(
        # Every site needed (min_sites 3 of 3): SecAgg+'s threshold must still be one Flower accepts.
        study(tmp_path / "run", site_configs, min_sites=3),
        on_event=streamed.append,
        should_cancel=lambda: False,
        timeout_s=540,
    )
    elapsed = time.monotonic() - started
    print(f"\nSecAgg+ run, 3 SuperNodes, 2 rounds: {elapsed:.1f} s ({result.timings})")
    assert result.status == "completed", result.error
    assert streamed == result.events
    health = [event for event in result.events if event["type"] == "health"]
    assert sorted(event["site"] for event in health) == ["alpha", "beta", "gamma"]
    assert all(event["rows_ok"] and event["schema_hash"] == spec_hash(SPEC) for event in health)
    rounds = _rounds(result)
    assert [event["round"] for event in rounds] == [1, 2]
    for event in rounds:
        assert event["sites"] == ["alpha", "beta", "gamma"] and event["excluded"] == []
        # SecAgg+: the server never sees an individual update, so there is no norm summary.
        assert event["norm_summary"] is None and event["secure_aggregation"] is True
        assert 0.0 <= event["clipped_fraction"] <= 1.0
        assert event["epsilon"] == pytest.approx(opacus_epsilon(event["round"]), rel=1e-9)
    assert rounds[1]["epsilon"] > rounds[0]["epsilon"]
    assert result.rounds_completed == 2 and result.epsilon == pytest.approx(opacus_epsilon(2), rel=1e-9)
    assert result.model_sha256 == rounds[-1]["model_sha256"] == parameters_sha256(result.parameters)
    assert [array.shape for array in result.parameters] == [(6,), (1,)]
    assert sorted(result.site_metrics) == ["alpha", "beta", "gamma"]
    # Each site's metrics, as its ClientApp computed them, give the model gate every value.
    for metrics in result.site_metrics.values():
        assert metrics["n_holdout"] == 150 and metrics["n_members"] == 400
        assert set(metrics["status"].values()) == {"ok"} and metrics["errors"] == {}
        _gate_values(metrics, epsilon=result.epsilon)
    assert (tmp_path / "run" / "events.jsonl").exists()


@pytest.mark.services
def test_poisoned_site_is_detected_and_excluded(tmp_path: Path, site_configs: list[Any]) -> None:
    started = time.monotonic()
    result = run_study(
        study(tmp_path / "run", site_configs, secure_aggregation=False, test_poison={"gamma": 50.0}),
        on_event=lambda event: None,
        should_cancel=lambda: False,
        timeout_s=540,
    )
    print(f"\nPoisoning run (no SecAgg+), 3 SuperNodes, 2 rounds: {time.monotonic() - started:.1f} s")
    assert result.status == "completed", result.error
    rounds = _rounds(result)
    assert len(rounds) == 2
    for event in rounds:
        assert event["sites"] == ["alpha", "beta"]
        assert [entry["site"] for entry in event["excluded"]] == ["gamma"]
        assert event["excluded"][0]["reason"].startswith("norm outlier")
        summary = event["norm_summary"]
        assert summary is not None and summary["max"] < 4 * summary["median"]
        assert event["epsilon"] == pytest.approx(opacus_epsilon(event["round"]), rel=1e-9)
    # The excluded update never reached the model: it stays in the honest sites' range.
    assert update_norm(result.parameters, [np.zeros(6), np.zeros(1)]) < 10.0


def _run_processes(run_dir: Path) -> dict[int, psutil.Process]:
    """This run's processes: every one carries a FLWR_HOME under the run directory."""
    found = {}
    for process in psutil.process_iter():
        try:
            if process.environ().get("FLWR_HOME", "").startswith(str(run_dir)):
                found[process.pid] = process
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.services
def test_cancel_terminates_every_process(tmp_path: Path, site_configs: list[Any]) -> None:
    run_dir = tmp_path / "run"
    seen: dict[int, psutil.Process] = {}
    rounds_seen: list[dict[str, Any]] = []

    def should_cancel() -> bool:
        seen.update(_run_processes(run_dir))
        return bool(rounds_seen)

    result = run_study(
        study(run_dir, site_configs, secure_aggregation=False, rounds=20),
        on_event=lambda event: rounds_seen.append(event) if event["type"] == "round" else None,
        should_cancel=should_cancel,
        timeout_s=540,
    )
    assert result.status == "cancelled"
    assert 1 <= result.rounds_completed < 20
    names = " ".join(" ".join(p.cmdline()[:2]) for p in seen.values() if p.is_running())
    # SuperLink, three SuperNodes, their SuperExecs and the ServerApp were alive when cancelled.
    assert len(seen) >= 6, names
    time.sleep(1.0)
    for pid, process in seen.items():
        alive = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        assert not alive, f"process {pid} survived the cancel"
    assert not _run_processes(run_dir)


def _supernode(run_dir: Path, index: int) -> psutil.Process:
    home = str(run_dir / "homes" / f"site-{index}")
    for process in _run_processes(run_dir).values():
        if process.environ().get("FLWR_HOME") == home and "flower-supernode" in " ".join(process.cmdline()):
            return process
    raise AssertionError(f"no SuperNode for site {index}")


@pytest.mark.services
@pytest.mark.parametrize("policy", ["quorum", "fail"])
def test_site_dropping_out_follows_the_policy(tmp_path: Path, site_configs: list[Any], policy: str) -> None:
    """gamma's SuperNode stops after round 1: "quorum" goes on with two sites (and the final
    evaluation skips the dead node without waiting out a timeout), "fail" stops. Two rounds are
    enough: the second is the first without gamma."""
    run_dir = tmp_path / "run"

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "round" and event["round"] == 1:
            _supernode(run_dir, 2).terminate()

    result = run_study(
        study(run_dir, site_configs, secure_aggregation=False, rounds=2, dropout_policy=policy),
        on_event=on_event,
        should_cancel=lambda: False,
        timeout_s=540,
    )
    rounds = _rounds(result)
    assert rounds[0]["sites"] == ["alpha", "beta", "gamma"]
    if policy == "quorum":
        assert result.status == "completed", result.error
        assert [event["sites"] for event in rounds[1:]] == [["alpha", "beta"]]
        assert rounds[1]["excluded"] == [{"site": "gamma", "reason": "dropped out"}]
        assert sorted(result.site_metrics) == ["alpha", "beta"]
        # The dead node's evaluation is not waited for until the round timeout (120 s).
        assert result.timings["total_s"] < 120, result.timings
    else:
        assert result.status == "failed" and "gamma" in result.error
        assert result.rounds_completed == 1 and result.parameters == []


@pytest.mark.services
def test_site_failing_the_health_check_fails_the_run_under_fail_policy(
    tmp_path: Path, site_configs: list[Any]
) -> None:
    """beta's training split lacks a declared column: reported at the health check (names and a
    flag only) and, under the "fail" policy, the run stops before any round."""
    from federation.runtime.tests.conftest import _store_encrypted

    broken = clinical_table(np.random.default_rng(9), 100).drop(columns=["bmi"])
    _store_encrypted(broken, Path(site_configs[1].train_path))
    result = run_study(
        study(tmp_path / "run", site_configs, secure_aggregation=False, dropout_policy="fail"),
        on_event=lambda event: None,
        should_cancel=lambda: False,
        timeout_s=300,
    )
    health = {event["site"]: event for event in result.events if event["type"] == "health"}
    assert health["beta"]["rows_ok"] is False and health["alpha"]["rows_ok"] is True
    assert result.status == "failed" and "2 of 3 sites" in result.error
    assert _rounds(result) == []
