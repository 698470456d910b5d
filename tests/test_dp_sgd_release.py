"""End to end for the DP-SGD model family (dp_sgd_mlp): an approved request reserves epsilon and
delta, the job trains the Opacus MLP, stores the .skops artifact (scikit-learn types only), and the
release's privacy block and model card state (epsilon, delta)-DP via DP-SGD. The gate's verdict is
set lenient here: the test is about the release path, not the model's quality (that is
generation/tests/test_dp_sgd_model.py's flchain test).

The fixtures are catalog/tests/test_dp_model_release.py's (mechanisms seeded there, so each run is
the same model).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from catalog.model_cards import model_card
from catalog.models import Release
from catalog.pipeline import pipeline_run
from catalog.tests.test_dp_model_release import (  # noqa: F401 (fixtures)
    _seeded_mechanisms,
    approve_model,
    file_model,
    model_dataset,
)
from generation.modeling import TRUSTED_TYPES, load_model_artifact
from generation.modeling.artifacts import artifact_types
from generation.models import BudgetLedgerEntry, SynthesisJob
from generation.storage import read_encrypted_bytes

FLAVOUR = "(epsilon, delta)-DP, record-level, via DP-SGD (Opacus RDP accountant)"


def test_a_dp_sgd_model_is_trained_released_and_described_with_its_delta(
    file_model: Any,  # noqa: F811 (the imported fixtures)
    approve_model: Any,  # noqa: F811
    model_dataset: Any,  # noqa: F811
    alice: Any,
    olivia: Any,
) -> None:
    request = file_model(
        synthesizer="dp_sgd_mlp",
        delta="1e-8",
        options={"hidden": 8, "epochs": 3},
        # A lenient gate: this test is about the release path, not whether a small noisy MLP is good.
        gate={"model_auc_lower_min": 0.5, "model_auc_ratio_min": 0.5, "calibration_ece_max": 0.5},
    )
    assert request.delta_atto == 10**10
    job = approve_model(request)
    assert (job.epsilon_micro, job.delta_atto) == (3_000_000, 10**10)
    entry = BudgetLedgerEntry.objects.get(job=job, kind="reserve")
    assert (entry.amount_micro, entry.delta_atto) == (3_000_000, 10**10)

    outcome = pipeline_run(job_id=job.pk)

    job = SynthesisJob.objects.get(pk=job.pk)
    assert outcome == "published", (outcome, job.state)
    release = Release.objects.get(job_id=job.pk)
    assert (release.kind, release.artifact_format, release.synthesizer) == ("model", "skops", "dp_sgd_mlp")
    facts = release.receipt["privacy_facts"]
    assert (facts["epsilon"], facts["delta"], facts["flavour"]) == ("3", "0.00000001", FLAVOUR)
    assert release.privacy["flavour"] == FLAVOUR and release.privacy["delta"] == 1e-8
    card = model_card(release=release, user=alice)
    assert FLAVOUR in card["privacy"]["headline"] or FLAVOUR in str(card["privacy"])
    data = read_encrypted_bytes(release.storage_path)
    assert hashlib.sha256(data).hexdigest() == release.sha256
    assert artifact_types(data) <= set(TRUSTED_TYPES)
    assert not [t for t in artifact_types(data) if "torch" in t or "opacus" in t]
    pipeline = load_model_artifact(data)
    rows = pd.DataFrame({"age": [55.0, 90.0], "sex": ["F", "M"], "creatinine": [0.9, 2.5]})
    proba = pipeline.predict_proba(rows)[:, 1]
    assert proba.shape == (2,) and ((proba > 0) & (proba < 1)).all()
