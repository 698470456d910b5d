"""Issue 11: an (epsilon, delta) ledger that belongs to the population, exact formatting, and job
retries that never spend unrecorded privacy (max attempts on every path, only the holder stores
output, superseded outputs deleted)."""

from __future__ import annotations

import os
import socket
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from core.errors import Conflict
from generation.choices import JobState
from generation.models import BudgetLedgerEntry, SourceDataset, SynthesisJob
from generation.services import (
    JobCancelled,
    budget_refund,
    budget_remaining,
    budget_reserve,
    budget_spend_estimate,
    delta_to_atto,
    format_delta,
    format_epsilon,
    job_claim,
    job_store_output,
)
from generation.storage import absolute_path


def _job(
    dataset: Any, epsilon_micro: int | None = 100_000, delta_atto: int | None = None, **fields: Any
) -> Any:
    return SynthesisJob.objects.create(
        dataset=dataset,
        columns=["age"],
        synthesizer="dp_test",
        rows=10,
        epsilon_micro=epsilon_micro,
        delta_atto=delta_atto,
        seed=1,
        **fields,
    )


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (50_000_000, "50"),
        (10_000_000, "10"),
        (100_000_000, "100"),
        (500_000, "0.5"),
        (1, "0.000001"),
        (0, "0"),
    ],
)
def test_format_epsilon_keeps_whole_numbers_whole(micro: int, text: str) -> None:
    # It used to strip every trailing zero: a request for epsilon 50 was reported as needing 5.
    assert format_epsilon(micro) == text


def test_delta_is_exact_and_rounds_against_the_spender() -> None:
    assert delta_to_atto("1e-9") == 10**9
    assert delta_to_atto("0.000000001") == 10**9
    assert format_delta(10**9) == "1E-9"
    assert delta_to_atto("1e-30") == 1  # any positive spend costs at least one unit
    assert delta_to_atto("1.5e-18", is_cap=True) == 1  # a cap rounds down


def test_reserving_more_delta_than_is_left_changes_nothing(dataset: Any, olivia: Any) -> None:
    SourceDataset.objects.filter(pk=dataset.pk).update(delta_cap_atto=2 * 10**9, delta_spent_atto=0)
    budget_reserve(job=_job(dataset, delta_atto=10**9), actor=olivia)
    budget_reserve(job=_job(dataset, delta_atto=10**9), actor=olivia)
    spent_before = SourceDataset.objects.values_list("epsilon_spent_micro", "delta_spent_atto").get(
        pk=dataset.pk
    )
    with pytest.raises(Conflict) as refused:
        budget_reserve(job=_job(dataset, delta_atto=1), actor=olivia)
    assert refused.value.code == "budget_exhausted" and "delta" in str(refused.value)
    after = SourceDataset.objects.values_list("epsilon_spent_micro", "delta_spent_atto").get(pk=dataset.pk)
    assert after == spent_before == (200_000, 2 * 10**9)
    entries = BudgetLedgerEntry.objects.filter(dataset=dataset).order_by("id")
    assert [(e.delta_atto, e.delta_spent_after_atto, e.composition) for e in entries] == [
        (10**9, 10**9, "basic"),
        (10**9, 2 * 10**9, "basic"),
    ]


def test_a_refund_returns_epsilon_and_delta(dataset: Any, olivia: Any) -> None:
    job = _job(dataset, delta_atto=10**9)
    budget_reserve(job=job, actor=olivia)
    assert budget_refund(job=job, reason="failed before reading")
    assert budget_remaining(dataset) == (dataset.epsilon_cap_micro, dataset.delta_cap_atto)


def test_a_new_version_spends_from_its_populations_ledger(dataset: Any, olivia: Any) -> None:
    """Registering a new file of the same patients must not reset the budget: the attack is to
    upload version 2 and spend the full cap again on the same population."""
    SourceDataset.objects.filter(pk=dataset.pk).update(epsilon_cap_micro=300_000)
    dataset.refresh_from_db()
    v2 = SourceDataset.objects.get(pk=dataset.pk)
    v2.pk, v2.version, v2.population_id, v2.epsilon_spent_micro = None, 99, dataset.pk, 0
    v2.save()
    budget_reserve(job=_job(dataset, 200_000), actor=olivia)
    with pytest.raises(Conflict):
        budget_reserve(job=_job(v2, 200_000), actor=olivia)
    entry = budget_reserve(job=_job(v2, 100_000), actor=olivia)
    assert entry.dataset_id == dataset.pk and entry.source_id == v2.pk
    assert budget_remaining(v2) == budget_remaining(dataset) == (0, dataset.delta_cap_atto)
    assert SourceDataset.objects.get(pk=v2.pk).epsilon_spent_micro == 0  # the version's own row is unused


def test_a_domain_estimate_is_its_own_ledger_entry(dataset: Any, sam: Any) -> None:
    entry = budget_spend_estimate(dataset=dataset, epsilon_micro=250_000, actor=sam, reason="bounds of age")
    assert entry.job is None and entry.purpose == "domain_estimate"
    assert budget_remaining(dataset)[0] == dataset.epsilon_cap_micro - 250_000
    SourceDataset.objects.filter(pk=dataset.pk).update(epsilon_spent_micro=dataset.epsilon_cap_micro)
    with pytest.raises(Conflict):
        budget_spend_estimate(dataset=dataset, epsilon_micro=1, actor=sam, reason="more")
    assert BudgetLedgerEntry.objects.filter(dataset=dataset).count() == 1


def _dead_pid() -> int:
    pid = 2**22 - 7
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_a_job_that_keeps_killing_its_worker_is_not_rerun_forever(dataset: Any) -> None:
    """Redelivery after the holder died used to claim the job whatever its attempt count."""
    job = _job(
        dataset,
        epsilon_micro=None,
        state=JobState.RUNNING,
        attempts=3,
        max_attempts=3,
        worker=f"{socket.gethostname()}:{_dead_pid()}:abc",
    )
    assert job_claim(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.error_code == "max_attempts" and job.attempts == 3


def test_only_the_current_holder_stores_output_and_earlier_outputs_are_deleted(dataset: Any) -> None:
    job = job_claim(job_id=_job(dataset, epsilon_micro=None).pk)
    frame = pd.DataFrame({"age": [50, 60]})
    first = job_store_output(job=job, frame=frame).output_path
    second = job_store_output(job=job, frame=frame).output_path
    assert first != second and not absolute_path(first).exists() and absolute_path(second).exists()
    late = SynthesisJob.objects.get(pk=job.pk)
    late.worker = "another-host:1:zzz"  # a worker whose lease lapsed and was taken over
    folder = absolute_path(second).parent
    before = set(folder.iterdir())
    with pytest.raises(JobCancelled):
        job_store_output(job=late, frame=frame)
    assert set(folder.iterdir()) == before  # its file was deleted, not left behind
    assert SynthesisJob.objects.get(pk=job.pk).output_path == second


def test_epsilon_remaining_is_exact_decimal(dataset: Any) -> None:
    assert isinstance(dataset.epsilon_remaining, Decimal)
