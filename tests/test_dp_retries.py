"""Issue 11 item 7: a retried DP job never spends unrecorded privacy.

Cross-app on purpose: the attack is on the whole pipeline (catalog.pipeline_run over generation's
jobs and ledger), so it drives the same entry point a worker does, in-process.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from approvals.services import RequestInput, request_create, request_decide, request_submit
from catalog.models import Release
from catalog.pipeline import pipeline_run
from generation.choices import JobState
from generation.models import BudgetLedgerEntry, SynthesisJob
from generation.storage import absolute_path
from generation.synthesizers.dp_copula import DPCopulaSynthesizer

COLUMNS = ["age", "sex", "kappa", "creatinine", "death"]


class WorkerKilled(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the pipeline catches it."""


def _approved_dp_job(dataset: Any, alice: Any, olivia: Any) -> SynthesisJob:
    draft = request_create(
        actor=alice,
        data=RequestInput(
            dataset_id=dataset.pk,
            title="DP retry",
            purpose="Prototype a mortality model",
            intended_use="Notebook exploration",
            audience="internal",
            columns=COLUMNS,
            synthesizer="dp_copula",
            rows=300,
            epsilon=0.5,
        ),
    )
    request = request_submit(actor=alice, request_id=draft.pk)
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    return SynthesisJob.objects.get(pk=request.job_id)


def _lapse_lease(job: SynthesisJob) -> None:
    SynthesisJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_a_retry_after_the_mechanisms_ran_resamples_from_the_saved_statistics(
    dataset: Any, alice: Any, olivia: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _approved_dp_job(dataset, alice, olivia)
    real_sample = DPCopulaSynthesizer.sample

    def killed_while_sampling(self: Any, **kwargs: Any) -> Any:
        raise WorkerKilled

    monkeypatch.setattr(DPCopulaSynthesizer, "sample", killed_while_sampling)
    with pytest.raises(WorkerKilled):
        pipeline_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.dp_state_path and absolute_path(job.dp_state_path).exists()
    assert job.data_accessed_at is not None and job.state == JobState.RUNNING

    def no_second_read(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the mechanisms ran on the data a second time under one debit")

    monkeypatch.setattr(DPCopulaSynthesizer, "fit", no_second_read)
    monkeypatch.setattr(DPCopulaSynthesizer, "sample", real_sample)
    _lapse_lease(job)
    assert pipeline_run(job_id=job.pk) in {"published", "gate_failed"}
    job.refresh_from_db()
    assert job.attempts == 2
    assert BudgetLedgerEntry.objects.filter(job=job, kind="reserve").count() == 1
    assert not BudgetLedgerEntry.objects.filter(job=job, kind="refund").exists()
    release = Release.objects.filter(job=job).first()
    if release is not None:
        assert release.privacy["dp"] is True and release.privacy["epsilon"] == 0.5


def test_a_retry_after_the_data_was_read_but_nothing_was_saved_fails_and_keeps_the_debit(
    dataset: Any, alice: Any, olivia: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _approved_dp_job(dataset, alice, olivia)

    def killed_while_fitting(self: Any, *args: Any, **kwargs: Any) -> None:
        raise WorkerKilled

    monkeypatch.setattr(DPCopulaSynthesizer, "fit", killed_while_fitting)
    with pytest.raises(WorkerKilled):
        pipeline_run(job_id=job.pk)
    _lapse_lease(job)
    assert pipeline_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.error_code == "dp_state_lost"
    assert job.request.status == "failed"
    # The data was read: the epsilon stays spent (no refund), and no second reservation was made.
    assert list(BudgetLedgerEntry.objects.filter(job=job).values_list("kind", flat=True)) == ["reserve"]
