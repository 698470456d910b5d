"""One real study on Flower (federation.runtime): SuperLink and three SuperNodes as processes, each
reading only its own site's encrypted split, supervised by the study task's service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.models import AuditEvent
from federation.models import Study, StudyStatus
from federation.services import epsilon_micro_up, study_run
from generation.models import SourceDataset

# Flower is a pinned dependency: a missing SuperLink is a broken install, and the test fails on it
# rather than skipping (under CI=true a test needing a service must run).
pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_a_real_study_runs_and_each_site_is_debited_the_per_record_epsilon(
    file_study: Callable[..., Any], alice: Any, approve_all: Callable[[Any], Any]
) -> None:
    from federation.runtime.accounting import record_level_epsilon
    from federation.services import study_submit

    study = study_submit(actor=alice, study_id=file_study(rounds=2).pk)
    study = approve_all(study)
    status = study_run(study_id=study.pk, timeout_s=600)
    study = Study.objects.get(pk=study.pk)
    assert status == StudyStatus.COMPLETED, (study.error_code, study.error_message)
    assert study.rounds_completed == 2 and study.round_log.count() == 2
    assert AuditEvent.objects.filter(action="study.round", target_id=str(study.pk)).count() == 2
    assert all(s.health.get("ok") for s in study.sites.all())
    last = study.round_log.order_by("number").last()
    assert last is not None and study.epsilon_spent_micro == last.epsilon_micro
    assert 0 < study.epsilon_spent_micro == study.epsilon_micro  # every planned round ran
    # The ledger is debited the per-record epsilon of the rounds run; the runtime's accountant's
    # per-site figure is kept beside it, smaller.
    per_record = record_level_epsilon(
        noise_multiplier=study.noise_multiplier, rounds=2, delta=float(study.delta)
    )
    assert study.epsilon_spent_micro == epsilon_micro_up(per_record)
    assert (
        study.epsilon_per_site_micro is not None
        and 0 < study.epsilon_per_site_micro < study.epsilon_spent_micro
    )
    assert last.epsilon_per_site_micro == study.epsilon_per_site_micro
    for site in study.sites.all():
        assert SourceDataset.objects.get(pk=site.dataset_id).epsilon_spent_micro == study.epsilon_spent_micro
        # Every site's metrics, computed by its ClientApp, went through the model gate: each check
        # has a value, or is not run for a reason the site's metrics state (300-row sites hold 60
        # holdout rows: under the 100 calibration needs, and few events), never for a missing key.
        checks = {c["name"]: c for c in site.gate_checks}
        assert set(checks) == {
            "model_auc",
            "model_auc_vs_baseline",
            "model_calibration",
            "model_membership_auc",
            "model_empirical_epsilon",
        }
        part = {
            "model_auc": "auc",
            "model_auc_vs_baseline": "baseline",
            "model_calibration": "calibration",
            "model_membership_auc": "membership",
            "model_empirical_epsilon": "membership",
        }
        for name, check in checks.items():
            if check["status"] == "not_run":
                assert site.metrics["status"][part[name]] in ("too_few_rows", "too_few_events"), check
            else:
                assert check["status"] in ("passed", "failed") and check["value"] is not None, check
        assert not site.metrics["errors"]
        assert checks["model_membership_auc"]["value"] is not None  # 240 members, 60 non-members
        assert checks["model_empirical_epsilon"]["epsilon_per_site"] == pytest.approx(
            float(study.epsilon_per_site)
        )
        assert checks["model_empirical_epsilon"]["threshold"] == pytest.approx(per_record)
    assert len(study.model_sha256) == 64 and study.model_card["rounds_completed"] == 2
    assert epsilon_micro_up(float(study.epsilon_spent)) == study.epsilon_spent_micro
