"""Test helpers shared by the approvals and catalog tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def declare_by_steward(dataset: Any, columns: Iterable[str] | None = None) -> Any:
    """Mark the signed-off domains of `columns` (all by default) as the steward's declarations.

    Tests that exercise DP requests for other reasons (budget, review, attempts) need a dataset a
    DP synthesizer may run on, whatever the shared fixture's declarations are; this stands in for
    the steward typing the public domain in, without depending on how the review form records it.
    """
    return _mark(dataset, columns, "steward")


def profile_suggestions_only(dataset: Any, columns: Iterable[str] | None = None) -> Any:
    """Mark the signed-off domains of `columns` (all by default) as read from the data: what a
    dataset signed off with the profile's pre-filled suggestions looks like."""
    return _mark(dataset, columns, "profile_suggestion")


def _mark(dataset: Any, columns: Iterable[str] | None, source: str) -> Any:
    """Set the declaration source in the columns and in the latest signed-off snapshot."""
    from generation.models import ClassificationVersion, DatasetColumn

    names = None if columns is None else set(columns)
    for column in DatasetColumn.objects.filter(dataset=dataset):
        if names is None or column.name in names:
            column.declared = {**(column.declared or {}), "source": source}
            column.save(update_fields=["declared"])
    version = ClassificationVersion.objects.get(dataset=dataset, number=dataset.classification_version)
    version.columns = [
        {**spec, "source": source} if names is None or spec.get("name") in names else spec
        for spec in version.columns
    ]
    version.save(update_fields=["columns"])
    return dataset
