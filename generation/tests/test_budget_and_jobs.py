"""The epsilon ledger (exact, never overspent, refunds only before data access) and job control
(leases, dead-holder takeover, reconciler, cancellation)."""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.errors import Conflict
from generation.choices import JobState
from generation.models import BudgetLedgerEntry, SourceDataset, SynthesisJob
from generation.services import (
    JobCancelled,
    budget_refund,
    budget_reserve,
    job_cancel,
    job_claim,
    job_finalize,
    job_report_progress,
    jobs_reconcile,
)


def _job(dataset: Any, epsilon_micro: int | None = 100_000, **fields: Any) -> SynthesisJob:
    return SynthesisJob.objects.create(
        dataset=dataset,
        columns=["age"],
        synthesizer="dp_test",
        rows=10,
        epsilon_micro=epsilon_micro,
        seed=1,
        **fields,
    )


def _set_cap(dataset: Any, micro: int) -> None:
    SourceDataset.objects.filter(pk=dataset.pk).update(epsilon_cap_micro=micro, epsilon_spent_micro=0)


def test_three_tenths_fill_a_cap_of_point_three_exactly(dataset: Any, olivia: Any) -> None:
    _set_cap(dataset, 300_000)
    for _ in range(3):
        budget_reserve(job=_job(dataset), actor=olivia)
    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == dataset.epsilon_cap_micro and dataset.epsilon_remaining == 0
    with pytest.raises(Conflict) as refused:
        budget_reserve(job=_job(dataset), actor=olivia)
    assert refused.value.code == "budget_exhausted" and refused.value.fields["epsilon_remaining"] == "0"
    entries = list(
        BudgetLedgerEntry.objects.filter(dataset=dataset).values_list(
            "kind", "amount_micro", "spent_after_micro"
        )
    )
    assert entries == [
        ("reserve", 100_000, 100_000),
        ("reserve", 100_000, 200_000),
        ("reserve", 100_000, 300_000),
    ]


@pytest.mark.integration
def test_concurrent_reservations_never_overspend(transactional_db: Any, dataset: Any, olivia: Any) -> None:
    _set_cap(dataset, 1_000_000)
    jobs = [_job(dataset, 70_000) for _ in range(100)]
    barrier = threading.Barrier(16)

    def reserve(job: SynthesisJob) -> bool:
        try:
            try:
                barrier.wait(timeout=1)
            except threading.BrokenBarrierError:
                pass
            with transaction.atomic():
                budget_reserve(job=job, actor=olivia)
            return True
        except Conflict:
            return False
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(reserve, jobs))
    dataset.refresh_from_db()
    assert outcomes.count(True) == 14 and outcomes.count(False) == 86
    assert dataset.epsilon_spent_micro == 980_000
    assert BudgetLedgerEntry.objects.filter(dataset=dataset, kind="reserve").count() == 14


def test_refund_only_before_data_access_and_only_once(dataset: Any, olivia: Any) -> None:
    untouched, touched = _job(dataset), _job(dataset)
    for job in (untouched, touched):
        budget_reserve(job=job, actor=olivia)
    SynthesisJob.objects.filter(pk=touched.pk).update(data_accessed_at=timezone.now())
    assert budget_refund(job=untouched, reason="failed early") is True
    assert budget_refund(job=untouched, reason="again") is False
    assert budget_refund(job=touched, reason="failed late") is False
    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == 100_000


def test_a_failed_job_that_never_read_data_is_refunded_by_finalize(dataset: Any, olivia: Any) -> None:
    job = _job(dataset)
    budget_reserve(job=job, actor=olivia)
    assert job_finalize(job=job, state=JobState.FAILED, error_code="x") is True
    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == 0
    assert list(job.ledger.values_list("kind", flat=True).order_by("id")) == ["reserve", "refund"]


def test_a_job_is_claimed_once(dataset: Any) -> None:
    job = _job(dataset)
    assert job_claim(job_id=job.pk) is not None
    assert job_claim(job_id=job.pk) is None


def test_a_job_held_by_a_dead_process_on_this_host_is_taken_over(dataset: Any) -> None:
    future = timezone.now() + timedelta(minutes=5)
    dead = _job(
        dataset,
        state=JobState.RUNNING,
        worker=f"{socket.gethostname()}:2147483646:ab",
        lease_expires_at=future,
        attempts=1,
    )
    alive = _job(
        dataset,
        state=JobState.RUNNING,
        worker=f"{socket.gethostname()}:{os.getpid()}:ab",
        lease_expires_at=future,
        attempts=1,
    )
    elsewhere = _job(
        dataset, state=JobState.RUNNING, worker="another-host:1:ab", lease_expires_at=future, attempts=1
    )
    taken = job_claim(job_id=dead.pk)
    assert taken is not None and taken.attempts == 2
    assert job_claim(job_id=alive.pk) is None
    assert job_claim(job_id=elsewhere.pk) is None


def test_progress_from_a_worker_that_lost_its_lease_stops_it(dataset: Any) -> None:
    job = job_claim(job_id=_job(dataset).pk)
    SynthesisJob.objects.filter(pk=job.pk).update(worker="someone-else")
    with pytest.raises(JobCancelled):
        job_report_progress(job=job, progress=0.5, stage="fitting")


def test_reconciler_requeues_lapsed_jobs_and_fails_exhausted_ones(
    dataset: Any, olivia: Any, django_capture_on_commit_callbacks: Any
) -> None:
    past = timezone.now() - timedelta(seconds=1)
    lapsed = _job(dataset, state=JobState.RUNNING, lease_expires_at=past, attempts=1, worker="h:1:a")
    exhausted = _job(dataset, state=JobState.RUNNING, lease_expires_at=past, attempts=3, worker="h:1:a")
    budget_reserve(job=exhausted, actor=olivia)
    fresh = _job(dataset, state=JobState.RUNNING, lease_expires_at=timezone.now() + timedelta(minutes=5))
    with django_capture_on_commit_callbacks() as callbacks:
        result = jobs_reconcile()
    assert result.requeued == [str(lapsed.pk)] and result.failed == [str(exhausted.pk)]
    assert len(callbacks) == 1  # the pipeline task is sent again for the re-queued job
    states = dict(SynthesisJob.objects.values_list("pk", "state"))
    assert states[lapsed.pk] == JobState.QUEUED and states[fresh.pk] == JobState.RUNNING
    assert states[exhausted.pk] == JobState.FAILED
    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == 0  # it failed before reading data: refunded


def test_reconciler_resends_a_queued_job_whose_message_was_lost(
    dataset: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(dataset)
    SynthesisJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks() as callbacks:
        assert jobs_reconcile().requeued == [str(job.pk)]
    assert len(callbacks) == 1


def test_cancelling_a_queued_job_ends_it_and_refunds(dataset: Any, olivia: Any, alice: Any) -> None:
    job = _job(dataset)
    budget_reserve(job=job, actor=olivia)
    assert job_cancel(job=job, actor=alice) is True
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job_claim(job_id=job.pk) is None
    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == 0


def test_cancelling_a_running_job_stops_it_at_the_next_progress_report(dataset: Any, alice: Any) -> None:
    job = job_claim(job_id=_job(dataset).pk)
    assert job_cancel(job=job, actor=alice) is True
    with pytest.raises(JobCancelled):
        job_report_progress(job=job, progress=0.3, stage="fitting")
    assert job_cancel(job=job, actor=alice) is False  # the second cancel is a no-op


def test_the_budget_page_lists_the_ledger_and_charts_it(
    client: Any, dataset: Any, olivia: Any, alice: Any, charlie: Any
) -> None:
    _set_cap(dataset, 1_000_000)
    job = _job(dataset, 250_000)
    budget_reserve(job=job, actor=olivia)
    job_finalize(job=job, state=JobState.FAILED, error_code="x")  # refunded: never read data
    budget_reserve(job=_job(dataset, 70_000), actor=olivia)
    client.force_login(olivia)  # a custodian sees every entry and the spend-over-time chart
    page = client.get(f"/datasets/{dataset.pk}/budget/").content.decode()
    assert 'data-testid="budget-remaining">epsilon 0.93<' in page
    assert str(job.pk)[:8] in page and 'data-testid="ledger"' in page and 'class="plotly-figure"' in page
    client.force_login(alice)  # a scientist sees the totals only: no job ids, approvers or timeline
    page = client.get(f"/datasets/{dataset.pk}/budget/").content.decode()
    assert 'data-testid="budget-remaining">epsilon 0.93<' in page
    assert str(job.pk)[:8] not in page and 'data-testid="ledger"' not in page
    assert 'class="plotly-figure"' not in page
    client.force_login(charlie)  # another team's scientist still sees the dataset's budget
    assert client.get(f"/datasets/{dataset.pk}/budget/").status_code == 200
    client.logout()
    assert client.get(f"/datasets/{dataset.pk}/budget/").status_code == 302
