"""Filing, deciding and approving a federated study: schema agreement, separation of duties, and
the per-site reservation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.models import AuditEvent
from core.errors import Conflict, PermissionDenied, ValidationFailed
from federation.models import SiteDecision, Study, StudyStatus
from federation.services import epsilon_micro_up, study_decide, study_run
from generation.models import BudgetLedgerEntry, EntryPurpose, LedgerKind, SourceDataset

pytestmark = pytest.mark.django_db


def test_declarations_that_differ_refuse_the_study(
    file_study: Callable[..., Any], sites: list[Any], stewards: list[Any]
) -> None:
    from generation.services import dataset_sign_off, dataset_update_columns

    lake = sites[1]
    dataset_update_columns(
        actor=stewards[1], dataset_id=lake.dataset_id, changes=[{"name": "kappa", "lower": 0, "upper": 250}]
    )
    dataset_sign_off(actor=stewards[1], dataset_id=lake.dataset_id)
    with pytest.raises(ValidationFailed) as refused:
        file_study()
    assert refused.value.code == "schema_mismatch"
    assert "Lake" in refused.value.message and "`kappa`" in refused.value.message
    assert "upper" in refused.value.message
    assert not Study.objects.exists()
    assert AuditEvent.objects.filter(action="study.file", outcome="denied").count() == 1


def test_every_site_pins_the_same_schema_hash_and_projected_epsilon(file_study: Callable[..., Any]) -> None:
    """What each site's ledger will reserve is the PER-RECORD epsilon of every planned round (the
    ledger's other releases are per record), not the smaller per-site accountant figure."""
    from federation.runtime.accounting import SiteLevelAccountant, record_level_epsilon

    study = file_study()
    hashes = {s.schema_hash for s in study.sites.all()}
    assert len(hashes) == 1 and len(next(iter(hashes))) == 64
    per_record = record_level_epsilon(noise_multiplier=2.0, rounds=3, delta=1e-8)
    accountant = SiteLevelAccountant(noise_multiplier=2.0, delta=1e-8)
    for _ in range(3):
        accountant.step(sampled_sites=3, total_sites=3)
    assert abs(float(study.epsilon) - per_record) < 1e-5
    assert study.epsilon_micro >= per_record * 1_000_000
    assert float(study.epsilon) > 2 * accountant.epsilon()  # 11.3 per record against 5.19 per site
    event = AuditEvent.objects.get(action="study.file", target_id=str(study.pk))
    assert event.details["epsilon_micro"] == study.epsilon_micro and event.details["epsilon_unit"] == "record"


def test_a_study_whose_per_record_epsilon_is_above_100_is_refused(file_study: Callable[..., Any]) -> None:
    """The refusal judges the per-record projection: noise 0.35 over 3 rounds is about 41 per site
    but above 100 per record, so it is refused."""
    from federation.runtime.accounting import record_level_epsilon
    from federation.services import per_site_epsilon

    assert per_site_epsilon(noise_multiplier=0.35, rounds=3, delta=1e-8) < 100
    assert record_level_epsilon(noise_multiplier=0.35, rounds=3, delta=1e-8) > 100
    with pytest.raises(ValidationFailed, match="per record"):
        file_study(noise_multiplier=0.35)
    assert not Study.objects.exists()


def test_a_direct_identifier_cannot_be_a_feature(file_study: Callable[..., Any], sites: list[Any]) -> None:
    from generation.models import DatasetColumn

    DatasetColumn.objects.filter(dataset_id__in=[s.dataset_id for s in sites], name="age").update(
        classification="direct_identifier"
    )
    with pytest.raises(ValidationFailed, match="direct identifier"):
        file_study()


def test_the_requester_cannot_approve_their_own_study(submitted_study: Any, alice: Any) -> None:
    with pytest.raises(PermissionDenied, match="your own study"):
        study_decide(actor=alice, study_id=submitted_study.pk, decision="approve")
    assert not submitted_study.decisions.exists()
    assert AuditEvent.objects.filter(action="study.decide", outcome="denied", actor_name="alice").count() == 1


def test_a_steward_of_no_participating_site_cannot_decide(submitted_study: Any, sam: Any) -> None:
    with pytest.raises(PermissionDenied, match="steward of a participating site"):
        study_decide(actor=sam, study_id=submitted_study.pk, decision="approve")


def test_a_site_stewards_refusal_blocks_the_study(
    submitted_study: Any, olivia: Any, stewards: list[Any]
) -> None:
    study_decide(actor=olivia, study_id=submitted_study.pk, decision="approve")
    study_decide(actor=stewards[0], study_id=submitted_study.pk, decision="approve")
    study = study_decide(
        actor=stewards[1], study_id=submitted_study.pk, decision="reject", comment="Our board has not agreed."
    )
    assert study.status == StudyStatus.REJECTED
    assert study.sites.get(site__name="Lake").decision == SiteDecision.REFUSED
    # The last steward's approval can no longer approve it, nothing was reserved, nothing runs.
    with pytest.raises(Conflict):
        study_decide(actor=stewards[2], study_id=submitted_study.pk, decision="approve")
    assert not BudgetLedgerEntry.objects.filter(purpose=EntryPurpose.FEDERATED_STUDY).exists()
    assert study_run(study_id=study.pk, runner=_never_called) == "skipped"
    assert Study.objects.get(pk=study.pk).status == StudyStatus.REJECTED


def test_approval_needs_the_officer_and_every_site_steward(
    submitted_study: Any, olivia: Any, stewards: list[Any]
) -> None:
    study = submitted_study
    for who in stewards:
        study = study_decide(actor=who, study_id=study.pk, decision="approve")
    assert study.status == StudyStatus.SUBMITTED  # no privacy officer yet
    study = study_decide(actor=olivia, study_id=study.pk, decision="approve")
    assert study.status == StudyStatus.APPROVED


def test_approval_reserves_each_sites_epsilon_from_its_own_ledger(
    submitted_study: Any, approve_all: Callable[[Any], Any]
) -> None:
    from federation.services import projected_epsilon

    study = approve_all(submitted_study)
    per_record = projected_epsilon(noise_multiplier=2.0, rounds=3, delta=1e-8)
    assert study.epsilon_micro == epsilon_micro_up(per_record)
    assert study.status == StudyStatus.APPROVED
    for site in study.sites.select_related("reserve_entry"):
        entry = site.reserve_entry
        assert entry is not None and entry.kind == LedgerKind.RESERVE
        assert entry.purpose == EntryPurpose.FEDERATED_STUDY and entry.job_id is None
        assert entry.dataset_id == site.dataset_id
        assert entry.amount_micro == study.epsilon_micro
        assert SourceDataset.objects.get(pk=site.dataset_id).epsilon_spent_micro == study.epsilon_micro


def test_one_site_short_of_budget_reserves_nothing_anywhere(
    submitted_study: Any, olivia: Any, stewards: list[Any], sites: list[Any]
) -> None:
    valley = SourceDataset.objects.get(pk=sites[2].dataset_id)
    SourceDataset.objects.filter(pk=valley.pk).update(epsilon_spent_micro=valley.epsilon_cap_micro - 1)
    study = submitted_study
    for who in (olivia, stewards[0], stewards[1]):
        study = study_decide(actor=who, study_id=study.pk, decision="approve")
    with pytest.raises(Conflict, match="Not enough privacy budget"):
        study_decide(actor=stewards[2], study_id=study.pk, decision="approve")
    study.refresh_from_db()
    assert study.status == StudyStatus.SUBMITTED
    assert not BudgetLedgerEntry.objects.filter(purpose=EntryPurpose.FEDERATED_STUDY).exists()
    for site in sites[:2]:
        assert SourceDataset.objects.get(pk=site.dataset_id).epsilon_spent_micro == 0


def test_submission_tiers_the_study_with_the_policy(file_study: Callable[..., Any], alice: Any) -> None:
    from federation.services import study_submit

    study = study_submit(actor=alice, study_id=file_study(secure_aggregation=False, noise_multiplier=0).pk)
    assert study.tier_level in ("medium", "high", "prohibited")
    assert any("secure aggregation" in r for r in study.tier_reasons)


def _never_called(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("the runtime must not start for a study that is not approved")
