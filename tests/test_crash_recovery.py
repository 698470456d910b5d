"""Jobs survive their worker being killed: SIGKILL the worker child mid-synthesis, five times.

Celery redelivers the task (acks_late + reject_on_worker_lost); the next child sees the lease
holder is dead and takes the job over; if a redelivery were lost, the reconciler (beat, run here
with a short lease) re-queues it. Every job must end published, with exactly one budget debit
and at most one release.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from approvals.services import RequestInput, request_create, request_decide, request_submit
from catalog.models import Release
from conftest import csv_upload, data_file
from generation.choices import JobState
from generation.models import BudgetLedgerEntry, SynthesisJob
from generation.public_declarations import FLCHAIN
from generation.services import dataset_register, dataset_sign_off, dataset_update_columns
from generation.synthesizers import REGISTRY

pytestmark = pytest.mark.integration
KILLS = 5


def _synthesizer() -> tuple[str, float | None]:
    # A DP synthesizer makes the ledger part of the check; fall back to the SDV copula.
    return ("dp_copula", 0.5) if "dp_copula" in REGISTRY else ("gaussian_copula", None)


def _wait(predicate: Any, timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s")


def _kill_mid_synthesis(job_id: Any) -> int:
    """Wait until the job is inside the synthesizer, then SIGKILL the worker child running it."""

    def busy() -> SynthesisJob | None:
        # Mid-synthesis: the data has been read and progress is inside the synthesizer's span
        # (job_synthesize maps the synthesizer's own 0..1 onto 0.1..0.7). A DP job is killed once
        # its mechanisms' output is saved: a retry must resample from it, never re-read the data
        # (a kill before that fails the job on purpose: tests/test_dp_retries.py).
        job = SynthesisJob.objects.get(pk=job_id)
        inside = job.state == JobState.RUNNING and job.data_accessed_at is not None and job.progress < 0.7
        if job.epsilon_micro is not None:
            inside = job.state in (JobState.RUNNING, JobState.VALIDATING) and bool(job.dp_state_path)
        return job if inside else None

    job = _wait(busy, timeout=120, interval=0.005)
    pid = int(job.worker.split(":")[1])
    os.kill(pid, signal.SIGKILL)
    return pid


def test_jobs_finish_once_despite_sigkill_of_the_worker_child(
    celery_workers: Any, sam: Any, alice: Any, olivia: Any
) -> None:
    celery_workers.start(
        env={"SYNTHGATE_JOB_LEASE_SECONDS": "6", "SYNTHGATE_RECONCILE_SECONDS": "2"},
        args=["-B", "--schedule", str(celery_workers.tmp_path / "beat-schedule")],
    )
    dataset = dataset_register(
        actor=sam,
        name="flchain full",
        epsilon_cap="5",
        uploaded_file=csv_upload(data_file("flchain.csv").read_bytes()),
    )
    # DP synthesis runs only on domains the steward declared from public knowledge.
    dataset_update_columns(actor=sam, dataset_id=dataset.pk, changes=FLCHAIN)
    dataset = dataset_sign_off(actor=sam, dataset_id=dataset.pk)
    synthesizer, epsilon = _synthesizer()
    requests = []
    for i in range(KILLS):
        draft = request_create(
            actor=alice,
            data=RequestInput(
                dataset_id=dataset.pk,
                title=f"crash {i}",
                purpose="p",
                intended_use="u",
                audience="internal",
                columns=["age", "sex", "kappa", "lambda", "creatinine", "futime"],
                synthesizer=synthesizer,
                rows=30_000,
                epsilon=epsilon,
            ),
        )
        requests.append(request_submit(actor=alice, request_id=draft.pk))
    killed = []
    for request in requests:
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
        request.refresh_from_db()
        killed.append(_kill_mid_synthesis(request.job_id))
    assert len(set(killed)) == KILLS

    def all_final() -> bool:
        return not SynthesisJob.objects.exclude(
            state__in=[JobState.SUCCEEDED, JobState.FAILED, JobState.GATE_FAILED, JobState.CANCELLED]
        ).exists()

    _wait(all_final, timeout=600, interval=1.0)
    for request in requests:
        request.refresh_from_db()
        job = request.job
        # "Finished" is a decided outcome: published, or refused by the release gate (a DP
        # release at a small epsilon may fail the utility floor; that is the gate working).
        assert job.state in {JobState.SUCCEEDED, JobState.GATE_FAILED}, (job.state, job.error_code)
        assert job.attempts >= 2
        releases = Release.objects.filter(request=request).count()
        assert releases == (1 if job.state == JobState.SUCCEEDED else 0)
        assert request.status == ("published" if releases else "gate_failed")
        reserves = BudgetLedgerEntry.objects.filter(job=job, kind="reserve").count()
        assert reserves == (1 if epsilon else 0)
        assert not BudgetLedgerEntry.objects.filter(job=job, kind="refund").exists()
        if epsilon:
            assert job.dp_state_path  # the retry resampled from the saved DP output
