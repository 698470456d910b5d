"""A tier's `min_training_rows`: a request on a dataset with fewer training rows is refused at
submission, with a message naming the minimum and the dataset's size (rounded for requesters)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from approvals.policies import PolicyError, parse_policy
from approvals.services import RequestInput, request_create, request_submit
from approvals.services.policy import policy_file
from conftest import SAFE_COLUMNS, csv_upload, small_flchain_csv
from core.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def _with_minimum(minimum: str) -> str:
    text = policy_file().read_text()
    assert text.count("    min_training_rows: 150\n") == 3
    return text.replace("    min_training_rows: 150\n", f"    min_training_rows: {minimum}\n")


@pytest.fixture
def tiny_dataset(sam: Any) -> Any:
    """100 registered rows: 80 to train on after the holdout, 20 held out."""
    from generation.public_declarations import FLCHAIN
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    registered = dataset_register(
        actor=sam, name="tiny", uploaded_file=csv_upload(small_flchain_csv(100)), epsilon_cap="1.0"
    )
    dataset_update_columns(actor=sam, dataset_id=registered.pk, changes=FLCHAIN)
    return dataset_sign_off(actor=sam, dataset_id=registered.pk)


def _draft(alice: Any, dataset: Any) -> GenerationRequest:
    data = RequestInput(
        dataset_id=dataset.pk,
        title="Tiny cohort",
        purpose="Prototype a model",
        intended_use="Notebook",
        audience="internal",
        columns=SAFE_COLUMNS,
        synthesizer="gaussian_copula",
        rows=50,
        epsilon=None,
    )
    return request_create(actor=alice, data=data)


def test_the_shipped_policy_refuses_a_100_row_dataset_at_submission(tiny_dataset: Any, alice: Any) -> None:
    assert tiny_dataset.training_rows < 150
    draft = _draft(alice, tiny_dataset)
    with pytest.raises(ValidationFailed) as refused:
        request_submit(actor=alice, request_id=draft.pk)
    assert refused.value.code == "dataset_too_small"
    message = refused.value.message
    assert "at least 150 training rows" in message
    # The requester is no custodian: the size is rounded, never the exact training count.
    assert "about 100" in message and str(tiny_dataset.training_rows) not in message
    draft.refresh_from_db()
    assert draft.status == RequestStatus.DRAFT and draft.assessments.count() == 0


def test_the_api_answers_400_with_the_code(tiny_dataset: Any, alice: Any, api: Any) -> None:
    draft = _draft(alice, tiny_dataset)
    response = api(alice).post(f"/api/v1/requests/{draft.pk}/submit/")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "dataset_too_small"


def test_a_policy_with_a_minimum_of_50_accepts_it(
    tiny_dataset: Any, alice: Any, settings: Any, tmp_path: Path
) -> None:
    relaxed = tmp_path / "tiering.yaml"
    relaxed.write_text(_with_minimum("50"))
    settings.SYNTHGATE_POLICY_FILE = relaxed
    submitted = request_submit(actor=alice, request_id=_draft(alice, tiny_dataset).pk)
    assert submitted.status == RequestStatus.IN_REVIEW
    assert submitted.tier_controls["min_training_rows"] == 50


def test_a_large_enough_dataset_passes_the_shipped_minimum(submitted_request: Any) -> None:
    assert submitted_request.status == RequestStatus.IN_REVIEW
    assert submitted_request.tier_controls["min_training_rows"] == 150


@pytest.mark.parametrize("value", ["-1", "2.5", "true", "99999999999"])
def test_the_loader_rejects_a_minimum_that_is_not_a_row_count(value: str) -> None:
    with pytest.raises(PolicyError) as problem:
        parse_policy(_with_minimum(value))
    assert any(p.path == "tiers.low.min_training_rows" for p in problem.value.problems)


def test_a_riskier_tier_may_not_ask_for_fewer_rows() -> None:
    text = _with_minimum("200").replace(
        "    synthesis_time_budget_s: 600\n    min_training_rows: 200\n",
        "    synthesis_time_budget_s: 600\n    min_training_rows: 100\n",
    )
    with pytest.raises(PolicyError) as problem:
        parse_policy(text)
    assert [p.path for p in problem.value.problems] == ["tiers.high.min_training_rows"]


def test_a_rule_can_only_raise_the_minimum() -> None:
    from approvals.policies.engine import merge_controls

    assert merge_controls({"min_training_rows": 200}, {"min_training_rows": 500})["min_training_rows"] == 500
    assert merge_controls({"min_training_rows": 200}, {"min_training_rows": 50})["min_training_rows"] == 200
