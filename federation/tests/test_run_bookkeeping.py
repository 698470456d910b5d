"""What a run leaves behind: one StudyRound and one audit event per round, and each site's ledger
debited the PER-RECORD epsilon of the rounds that ran (`record_level_epsilon`, the ledger's unit;
the rest refunded, never more than reserved), the accountant's per-site figure stated beside it.

The runtime is replaced here by a function that plays the events and returns a StudyResult built
by hand (the real Flower run is in test_integration.py); every figure is the runtime's own
accountant's (per site, as the runtime reports it), so the test checks the bookkeeping, not a
number it chose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from audit.models import AuditEvent
from federation.models import Study, StudyRound, StudyStatus
from federation.runtime import StudyResult
from federation.runtime.accounting import SiteLevelAccountant, record_level_epsilon
from federation.services import epsilon_micro_up, study_cancel, study_run
from generation.models import BudgetLedgerEntry, EntryPurpose, LedgerKind, SourceDataset

pytestmark = pytest.mark.django_db

SITES = ["Lake", "North", "Valley"]


def _epsilon(study: Study, rounds: int, sampled: int = 3) -> float:
    """The runtime accountant's figure: per site (add or remove one site)."""
    accountant = SiteLevelAccountant(noise_multiplier=study.noise_multiplier, delta=float(study.delta))
    for _ in range(rounds):
        accountant.step(sampled_sites=sampled, total_sites=3)
    return accountant.epsilon()


def _per_record_micro(study: Study, rounds: int) -> int:
    """What the ledger is debited for `rounds` rounds: the per-record epsilon, micro-epsilon up."""
    return epsilon_micro_up(
        record_level_epsilon(noise_multiplier=study.noise_multiplier, rounds=rounds, delta=float(study.delta))
    )


def _runner(
    rounds: int, *, status: str = "completed", epsilon: float | None = None, cancel_after: int | None = None
) -> Callable[..., StudyResult]:
    def run(
        config: Any,
        *,
        on_event: Callable[[dict[str, Any]], None],
        should_cancel: Callable[[], bool],
        timeout_s: float,
    ) -> StudyResult:
        from federation.models import StudySite

        assert config.rounds == 3 and {s.name for s in config.sites} == set(SITES)
        assert all(s.storage_env.get("SYNTHGATE_DATA_KEY") for s in config.sites)
        study_id = config.run_dir.name
        expected_hash = StudySite.objects.filter(study_id=study_id).values_list("schema_hash", flat=True)[0]
        for name in SITES:
            on_event(
                {
                    "type": "health",
                    "site": name,
                    "connected": True,
                    "schema_hash": expected_hash,
                    "schema_ok": True,
                    "rows_ok": True,
                }
            )
        done = 0
        study = Study.objects.get(pk=study_id)
        for number in range(1, rounds + 1):
            if should_cancel():
                break
            done = number
            on_event(
                {
                    "type": "round",
                    "round": number,
                    "sites": SITES[:2] if number == 2 else SITES,
                    "excluded": ["Valley"] if number == 2 else [],
                    "norm_summary": {"min": 0.2, "median": 0.5, "max": 1.7, "count": 3},
                    "clipped_fraction": 1 / 3,
                    "epsilon": _epsilon(study, number),
                    "model_sha256": f"{number:064x}",
                }
            )
            if cancel_after == number:
                study_cancel(actor=study.requester, study_id=study.pk)
        metrics = {name: _metrics(seed) for seed, name in enumerate(SITES)}
        final_status = "cancelled" if cancel_after else status
        return StudyResult(
            status=final_status,
            rounds_completed=done,
            epsilon=_epsilon(study, done) if epsilon is None else epsilon,
            delta=float(study.delta),
            parameters=[np.array([0.1, -0.2, 0.3, 0.0, 0.5, 0.1]), np.array([0.05])],
            model_sha256="f" * 64,
            site_metrics=metrics,
            events=[],
            error="" if status == "completed" else "boom",
        )

    return run


def _metrics(seed: int) -> dict[str, Any]:
    """Metrics shaped as the sites compute them (validation.metrics.model), on made-up scores."""
    from validation.metrics.model import compute_model_metrics

    rng = np.random.default_rng(seed)
    y_member, y_holdout = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    p_member = np.clip(0.5 + 0.3 * (y_member - 0.5) + rng.normal(0, 0.2, 200), 0.01, 0.99)
    p_holdout = np.clip(0.5 + 0.3 * (y_holdout - 0.5) + rng.normal(0, 0.2, 200), 0.01, 0.99)
    return compute_model_metrics(
        y_member=y_member,
        p_member=p_member,
        y_holdout=y_holdout,
        p_holdout=p_holdout,
        p_holdout_baseline=p_holdout,
        seed=seed,
    )


@pytest.fixture
def approved(submitted_study: Any, approve_all: Callable[[Any], Any]) -> Study:
    study: Study = approve_all(submitted_study)
    assert study.status == StudyStatus.APPROVED
    return study


def _ledger(study: Study) -> list[tuple[Any, int, int, int]]:
    """Per site: (dataset, reserved, refunded, dataset's spent counter)."""
    rows = []
    for site in study.sites.all():
        reserve = BudgetLedgerEntry.objects.get(
            dataset_id=site.dataset_id, purpose=EntryPurpose.FEDERATED_STUDY, kind=LedgerKind.RESERVE
        )
        refund = BudgetLedgerEntry.objects.filter(
            dataset_id=site.dataset_id, purpose=EntryPurpose.FEDERATED_STUDY, kind=LedgerKind.REFUND
        ).first()
        spent = SourceDataset.objects.get(pk=site.dataset_id).epsilon_spent_micro
        rows.append((site.dataset_id, reserve.amount_micro, refund.amount_micro if refund else 0, spent))
    return rows


def test_each_sites_debit_is_the_per_record_epsilon_and_the_rest_is_refunded(approved: Study) -> None:
    assert study_run(study_id=approved.pk, runner=_runner(2, status="completed")) == StudyStatus.COMPLETED
    study = Study.objects.get(pk=approved.pk)
    per_site = epsilon_micro_up(_epsilon(study, 2))
    per_record = _per_record_micro(study, 2)
    assert 0 < per_site < per_record < study.epsilon_micro
    assert study.epsilon_spent_micro == per_record
    assert study.epsilon_per_site_micro == per_site  # stated beside it, not debited
    for _dataset, reserved, refunded, spent in _ledger(study):
        assert reserved == study.epsilon_micro == _per_record_micro(study, 3)
        assert spent == per_record  # the site's ledger is debited the per-record figure
        assert refunded == reserved - per_record
    assert all(s.spent_micro == per_record and s.settled_at for s in study.sites.all())
    event = AuditEvent.objects.get(action="study.completed", target_id=str(study.pk)).details
    assert (event["epsilon_spent_micro"], event["epsilon_unit"], event["epsilon_per_site_micro"]) == (
        per_record,
        "record",
        per_site,
    )


def test_a_runtime_figure_above_the_implied_one_is_what_is_debited(approved: Study) -> None:
    """The debit is the larger of the per-record figure implied over the rounds that ran and the
    runtime's own figure: a runtime that reports more (within the reservation) is believed."""
    study = Study.objects.get(pk=approved.pk)
    implied = _per_record_micro(study, 2)
    reported = (implied + study.epsilon_micro) / 2 / 1_000_000
    assert study_run(study_id=approved.pk, runner=_runner(2, epsilon=reported)) == StudyStatus.COMPLETED
    study = Study.objects.get(pk=approved.pk)
    assert study.epsilon_spent_micro == epsilon_micro_up(reported) > implied
    for _dataset, reserved, refunded, spent in _ledger(study):
        assert spent == epsilon_micro_up(reported) and refunded == reserved - spent


def test_a_study_and_a_per_record_release_compose_on_the_sites_ledger(
    approved: Study, stewards: list[Any], sites: list[Any]
) -> None:
    """The attack: the ledger of North's dataset composes the study with a per-record DP release
    (a DP domain estimate). Had the study been debited its per-site epsilon, the dataset's spent
    would be below the sum of the per-record epsilons the two releases imply. It must equal it: the
    study's debit is the per-record epsilon of the rounds run, strictly above the per-site figure."""
    from generation.services import dataset_request_domain_estimate

    assert study_run(study_id=approved.pk, runner=_runner(2)) == StudyStatus.COMPLETED
    study = Study.objects.get(pk=approved.pk)
    north = sites[0]  # registered by stewards[0] (federation/tests/conftest.py)
    assert north.name == "North"
    estimate = dataset_request_domain_estimate(
        actor=stewards[0], dataset_id=north.dataset_id, column="kappa", epsilon="0.5", lower=0, upper=200
    )
    assert estimate.amount_micro == 500_000

    per_record = record_level_epsilon(
        noise_multiplier=study.noise_multiplier, rounds=2, delta=float(study.delta)
    )
    per_site = _epsilon(study, 2)
    assert study.epsilon_spent_micro == epsilon_micro_up(per_record)
    assert study.epsilon_spent_micro > epsilon_micro_up(per_site)  # the per-site debit under-counted
    dataset = SourceDataset.objects.get(pk=north.dataset_id)
    assert dataset.epsilon_spent_micro == epsilon_micro_up(per_record) + 500_000
    # The ledger's own entries say the same: what was reserved, less what was refunded.
    entries = BudgetLedgerEntry.objects.filter(dataset_id=north.dataset_id)
    net = sum(e.amount_micro if e.kind == LedgerKind.RESERVE else -e.amount_micro for e in entries)
    assert net == dataset.epsilon_spent_micro
    # The other sites' ledgers hold the study alone, per record.
    for site in sites:
        if site.name != "North":
            assert SourceDataset.objects.get(pk=site.dataset_id).epsilon_spent_micro == epsilon_micro_up(
                per_record
            )


def test_every_round_is_recorded_and_audited(approved: Study) -> None:
    study_run(study_id=approved.pk, runner=_runner(3))
    rounds = list(StudyRound.objects.filter(study=approved).order_by("number"))
    assert [r.number for r in rounds] == [1, 2, 3]
    assert rounds[1].excluded == ["Valley"] and rounds[1].sites == ["Lake", "North"]
    assert rounds[0].norm_summary == {"min": 0.2, "median": 0.5, "max": 1.7, "count": 3.0}
    events = list(AuditEvent.objects.filter(action="study.round", target_id=str(approved.pk)).order_by("seq"))
    assert [e.details["round"] for e in events] == [1, 2, 3]
    last = events[-1].details
    # Both units: per record (what the ledger is debited) and per site as the accountant reported.
    assert last["epsilon_per_record_micro"] == _per_record_micro(approved, 3)
    assert last["epsilon_per_site_micro"] == epsilon_micro_up(_epsilon(approved, 3))
    assert "epsilon_micro" not in last  # no figure without its unit
    for row in rounds:
        assert row.epsilon_micro == _per_record_micro(approved, row.number)
        assert row.epsilon_per_site_micro == epsilon_micro_up(_epsilon(approved, row.number))
        assert row.epsilon_micro > row.epsilon_per_site_micro
    assert last["clipped_fraction"] == pytest.approx(1 / 3)
    assert last["model_sha256"] == f"{3:064x}" and last["sites"] == SITES
    assert AuditEvent.objects.filter(action="study.health", target_id=str(approved.pk)).count() == 3
    study = Study.objects.get(pk=approved.pk)
    assert study.status == StudyStatus.COMPLETED and study.progress == 1.0
    # Every planned round ran: the debit is exactly the reservation (same function, same inputs).
    assert study.epsilon_spent_micro == study.epsilon_micro == rounds[-1].epsilon_micro
    assert all(s.health["ok"] for s in study.sites.all())
    # The model is stored encrypted with its hash, and its card lists the sites and the rounds.
    assert study.model_path.endswith(".npz.enc") and len(study.model_sha256) == 64
    assert [s["name"] for s in study.model_card["sites"]] == SITES
    assert [r["round"] for r in study.model_card["round_log"]] == [1, 2, 3]
    # The per-site gate judged each site's own metrics.
    for site in study.sites.all():
        assert {c["name"] for c in site.gate_checks} >= {
            "model_auc",
            "model_membership_auc",
            "model_empirical_epsilon",
        }
        assert site.gate_passed is not None and site.metrics["n_holdout"] == 200


def test_cancelling_a_running_study_stops_it_and_debits_the_rounds_that_ran(approved: Study) -> None:
    assert study_run(study_id=approved.pk, runner=_runner(3, cancel_after=1)) == StudyStatus.CANCELLED
    study = Study.objects.get(pk=approved.pk)
    assert study.rounds_completed == 1 and study.round_log.count() == 1
    one_round = _per_record_micro(study, 1)
    assert one_round > epsilon_micro_up(_epsilon(study, 1))
    for _dataset, reserved, refunded, spent in _ledger(study):
        assert spent == one_round and refunded == reserved - one_round


def test_an_accountant_figure_above_the_reservation_never_debits_more(approved: Study) -> None:
    assert study_run(study_id=approved.pk, runner=_runner(3, epsilon=1e6)) == StudyStatus.FAILED
    study = Study.objects.get(pk=approved.pk)
    assert study.error_code == "accountant_over_reservation"
    for _dataset, reserved, refunded, spent in _ledger(study):
        assert spent == reserved and refunded == 0


def test_a_run_that_crashes_after_reading_data_spends_the_reservation(approved: Study) -> None:
    def crash(config: Any, *, on_event: Callable[[dict[str, Any]], None], **_kw: Any) -> Any:
        on_event(
            {
                "type": "round",
                "round": 1,
                "sites": SITES,
                "excluded": [],
                "norm_summary": {},
                "clipped_fraction": 0.0,
                "epsilon": 0.5,
                "model_sha256": "a" * 64,
            }
        )
        raise RuntimeError("a site value 42 leaked into this message")

    assert study_run(study_id=approved.pk, runner=crash) == StudyStatus.FAILED
    study = Study.objects.get(pk=approved.pk)
    assert "42" not in study.error_message  # the exception's text never reaches the row
    for _dataset, reserved, refunded, spent in _ledger(study):
        assert spent == reserved and refunded == 0


def test_cancelled_before_the_run_refunds_everything(approved: Study, alice: Any) -> None:
    study_cancel(actor=alice, study_id=approved.pk)
    for _dataset, reserved, refunded, spent in _ledger(Study.objects.get(pk=approved.pk)):
        assert spent == 0 and refunded == reserved
    assert study_run(study_id=approved.pk, runner=_runner(3)) == "skipped"


def test_a_second_delivery_runs_nothing(approved: Study) -> None:
    assert study_run(study_id=approved.pk, runner=_runner(1)) == StudyStatus.COMPLETED
    assert study_run(study_id=approved.pk, runner=_runner(1)) == "skipped"
    assert (
        BudgetLedgerEntry.objects.filter(purpose=EntryPurpose.FEDERATED_STUDY, kind=LedgerKind.REFUND).count()
        == 3
    )


def test_a_study_whose_worker_went_silent_is_failed_and_never_run_twice(approved: Study) -> None:
    from datetime import timedelta

    from django.utils import timezone

    Study.objects.filter(pk=approved.pk).update(
        status=StudyStatus.RUNNING, lease_expires_at=timezone.now() - timedelta(seconds=1), rounds_completed=1
    )
    assert study_run(study_id=approved.pk, runner=_runner(3)) == "skipped"
    study = Study.objects.get(pk=approved.pk)
    assert study.status == StudyStatus.FAILED and study.error_code == "lease_lapsed"
    for _dataset, reserved, refunded, spent in _ledger(study):
        assert spent == reserved and refunded == 0


def test_each_sites_gate_judges_every_check_with_a_value_and_says_the_unit(
    approved: Study, alice: Any
) -> None:
    """The per-site gate reads the metrics the sites compute (validation.metrics.model): every
    check has a real value (none not_run for a missing key), the epsilon check compares per-record
    numbers and says so, and the card and page show them."""
    from django.test import Client
    from django.urls import reverse

    from federation.runtime.accounting import record_level_epsilon
    from validation.model_gate import MODEL_CHECK_NAMES

    study_run(study_id=approved.pk, runner=_runner(3))
    study = Study.objects.get(pk=approved.pk)
    per_site = float(study.epsilon_per_site)
    per_record = record_level_epsilon(
        noise_multiplier=study.noise_multiplier, rounds=3, delta=float(study.delta)
    )
    assert per_record > per_site > 0
    assert study.epsilon_spent_micro == epsilon_micro_up(per_record)
    for site in study.sites.all():
        checks = {c["name"]: c for c in site.gate_checks}
        assert tuple(checks) == MODEL_CHECK_NAMES
        for check in checks.values():
            assert check["status"] in ("passed", "failed") and check["value"] is not None, check
        assert checks["model_auc"]["ci"][0] is not None  # the interval survives storage
        epsilon = checks["model_empirical_epsilon"]
        assert epsilon["threshold"] == pytest.approx(per_record)
        assert epsilon["epsilon_per_site"] == pytest.approx(per_site)
        assert epsilon["unit"].startswith("per record") and "per-site epsilon" in epsilon["note"]
    card = study.model_card
    assert "Holdout evaluation is outside the DP guarantee" in card["evaluation"]
    assert "Holdout evaluation is outside the DP guarantee" in card["privacy"]["statement"]
    assert card["privacy"]["epsilon_per_record_implied"] == pytest.approx(per_record)
    assert card["privacy"]["epsilon_per_site"] == pytest.approx(per_site)
    assert card["privacy"]["epsilon_debited_per_record"] == str(study.epsilon_spent)
    statement = card["privacy"]["statement"]
    assert f"debited epsilon {float(study.epsilon_spent):.6g} per record" in statement
    assert f"accountant's epsilon is {per_site:.6g}" in statement
    assert [r["epsilon_per_record"] for r in card["round_log"]] == [
        str(r.epsilon) for r in study.round_log.all()
    ]
    assert [s["name"] for s in card["sites"]] == SITES and card["rounds_completed"] == 3
    assert all(len(s["gate_checks"]) == len(MODEL_CHECK_NAMES) for s in card["sites"])
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("federation:study-detail", kwargs={"study_id": study.pk})).content.decode()
    assert "Holdout evaluation is outside the DP guarantee" in page
    for name in SITES:
        assert f'data-testid="site-gate-{name}"' in page
    assert "model_empirical_epsilon" in page and "per record (value and threshold)" in page
    assert f"{per_record:.4f}" in page  # the threshold, as a number
    assert f'data-testid="study-epsilon-debited">{study.epsilon_spent}<' in page
    assert f'data-testid="study-epsilon-per-site">{study.epsilon_per_site}<' in page
    api = client.get(f"/api/v1/studies/{study.pk}/")
    assert api.status_code == 200
    assert all(len(s["gate_checks"]) == len(MODEL_CHECK_NAMES) for s in api.json()["sites"])
    body = api.json()
    assert body["ledger_epsilon_unit"] == "record"
    assert body["epsilon_debited_per_record"] == str(study.epsilon_spent)
    assert body["epsilon_per_site"] == str(study.epsilon_per_site)


def test_the_reconciler_fails_studies_whose_lease_lapsed_and_settles_their_ledgers(approved: Study) -> None:
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from federation.tasks import RECONCILE_STUDIES_TASK, reconcile_studies
    from portal.celery import app

    # Registered on the beat and routed to the housekeeping queue.
    beat = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert RECONCILE_STUDIES_TASK in beat
    assert app.amqp.router.route({}, RECONCILE_STUDIES_TASK)["queue"].name == "housekeeping"

    # A running study whose lease is still good is left alone.
    Study.objects.filter(pk=approved.pk).update(
        status=StudyStatus.RUNNING, lease_expires_at=timezone.now() + timedelta(minutes=5), rounds_completed=1
    )
    assert reconcile_studies.apply().get() == {"failed": 0}
    assert Study.objects.get(pk=approved.pk).status == StudyStatus.RUNNING
    assert all(s.settled_at is None for s in approved.sites.all())

    # Its worker died: the lease lapses and the next tick fails it, spending each reservation.
    Study.objects.filter(pk=approved.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert reconcile_studies.apply().get() == {"failed": 1}
    study = Study.objects.get(pk=approved.pk)
    assert study.status == StudyStatus.FAILED and study.error_code == "lease_lapsed"
    assert study.epsilon_spent_micro == study.epsilon_micro
    for _dataset, reserved, refunded, spent in _ledger(study):
        assert spent == reserved and refunded == 0
    assert AuditEvent.objects.filter(action="study.fail", target_id=str(study.pk)).count() == 1
    # A second tick (or a late redelivery of the run) changes nothing and settles nothing twice.
    assert reconcile_studies.apply().get() == {"failed": 0}
    assert study_run(study_id=study.pk, runner=_runner(3)) == "skipped"
    assert (
        BudgetLedgerEntry.objects.filter(purpose=EntryPurpose.FEDERATED_STUDY, kind=LedgerKind.REFUND).count()
        == 0
    )
    assert AuditEvent.objects.filter(action="study.fail", target_id=str(study.pk)).count() == 1
