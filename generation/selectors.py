"""Reads of source datasets and jobs, always scoped to what the user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.roles import Role, has_role
from generation.choices import Classification, DatasetStatus
from generation.models import DatasetColumn, SourceDataset

# Everyone with a role sees registered datasets' metadata (never their rows): scientists need it
# to file requests, reviewers to judge them. Retired datasets only to stewards and oversight.
_OVERSIGHT = (Role.DATA_STEWARD, Role.PRIVACY_OFFICER, Role.ADMIN, Role.AUDITOR)


def datasets_visible_to(*, user: Any) -> QuerySet[SourceDataset]:
    if has_role(user, *_OVERSIGHT):
        return SourceDataset.objects.all()
    if has_role(user, Role.DATA_SCIENTIST):
        return SourceDataset.objects.filter(status=DatasetStatus.READY)
    return SourceDataset.objects.none()


def datasets_requestable_by(*, user: Any) -> QuerySet[SourceDataset]:
    return datasets_visible_to(user=user).filter(status=DatasetStatus.READY)


def dataset_columns(*, dataset: SourceDataset) -> QuerySet[DatasetColumn]:
    return dataset.columns.order_by("position")


def synthesizable_columns(*, dataset: SourceDataset) -> QuerySet[DatasetColumn]:
    return dataset_columns(dataset=dataset).exclude(classification=Classification.DIRECT_IDENTIFIER)
