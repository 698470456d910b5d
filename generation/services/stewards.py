"""Who may change a source dataset: the one check every dataset service runs first."""

from __future__ import annotations

from typing import Any

from audit.services import audit_denied
from core.errors import NotFound, PermissionDenied
from core.ids import first_by_uuid
from core.roles import MANAGES_DATASETS, PortalUser, has_role
from generation.models import SourceDataset


def require_steward(actor: PortalUser, action: str, target_id: object) -> None:
    """Refuse, and audit the refusal, unless `actor` manages datasets (a steward or an admin)."""
    if not has_role(actor, *MANAGES_DATASETS):
        audit_denied(
            actor=actor,
            action=action,
            target_type="dataset",
            target_id=target_id,
            reason="data steward role required",
        )
        raise PermissionDenied("Only data stewards can register and review source datasets.")


def dataset_get_for_steward(*, actor: PortalUser, dataset_id: Any, action: str) -> SourceDataset:
    """The dataset `actor` may see (else 404), once `actor` is known to manage datasets (else 403)."""
    from generation.selectors import datasets_visible_to

    dataset = first_by_uuid(datasets_visible_to(user=actor), dataset_id)
    if dataset is None:
        raise NotFound("No such dataset.")
    require_steward(actor, action, dataset.pk)
    return dataset
