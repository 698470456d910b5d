"""Extra personas and helpers for the review workflow.

pia   privacy officer, team Privacy     (a second officer outside the requester's team)
stan  data steward, team Data Office    (a second steward)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

# No quasi-identifier or sensitive column: an external request for these is high tier (two
# approvals) rather than prohibited, whatever the dataset's re-identification estimate.
NO_QI_COLUMNS = ["kappa", "lambda", "creatinine", "futime"]


@pytest.fixture
def pia(make_user: Callable[..., Any]) -> Any:
    return make_user("pia", "privacy_officer", "Privacy")


@pytest.fixture
def stan(make_user: Callable[..., Any]) -> Any:
    return make_user("stan", "data_steward", "Data Office")


class FakeDPSynthesizer:
    """Stands in for the DP synthesizers another issue brings (only `is_dp` matters here)."""

    name: ClassVar[str] = "dp_test"
    label: ClassVar[str] = "Test DP synthesizer"
    is_dp: ClassVar[bool] = True


@pytest.fixture
def dp_synthesizer(monkeypatch: pytest.MonkeyPatch, dataset: Any) -> str:
    """A DP synthesizer, and a dataset whose signed-off domains are the steward's (DP refuses
    domains only a profile suggested: tested in test_dp_requests)."""
    from approvals.tests.helpers import declare_by_steward
    from generation.synthesizers import REGISTRY

    monkeypatch.setitem(REGISTRY, FakeDPSynthesizer.name, FakeDPSynthesizer)
    declare_by_steward(dataset)
    return FakeDPSynthesizer.name


@pytest.fixture
def declared_dataset(dataset: Any) -> Any:
    """The shared dataset, its signed-off domains marked as declared by the steward."""
    from approvals.tests.helpers import declare_by_steward

    return declare_by_steward(dataset)


@pytest.fixture
def submit(make_request: Callable[..., Any], alice: Any) -> Callable[..., Any]:
    """submit(**overrides) -> alice's request, filed and submitted."""
    from approvals.services import request_submit

    def run(**overrides: Any) -> Any:
        return request_submit(actor=alice, request_id=make_request(**overrides).pk)

    return run


@pytest.fixture
def with_emails(db: Any) -> Callable[..., None]:
    """with_emails(user, ...) gives each user username@example.org."""
    from portal.models import User

    def give(*users: Any) -> None:
        for user in users:
            User.objects.filter(pk=user.pk).update(email=f"{user.username}@example.org")
            user.email = f"{user.username}@example.org"

    return give
