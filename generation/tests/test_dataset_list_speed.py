"""The dataset list builds its column items directly (generation.api.serializers.column_item)
instead of through DRF's per-field machinery: the JSON must be what ColumnOutputSerializer, the
declared schema, renders, byte for byte, for custodians and for everyone else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import csv_upload, small_flchain_csv
from generation.api.serializers import ColumnOutputSerializer, ordered_columns
from generation.models import SourceDataset

pytestmark = pytest.mark.django_db


def _declared_columns(dataset: SourceDataset, user: Any) -> list[dict[str, Any]]:
    columns = ordered_columns(SourceDataset.objects.get(pk=dataset.pk))
    return json.loads(json.dumps(ColumnOutputSerializer(columns, many=True, context={"user": user}).data))


@pytest.fixture
def undeclared(sam: Any) -> SourceDataset:
    """Registered, not reviewed: every domain is a profile suggestion; one column is the entity."""
    from generation.services import dataset_register

    registered = dataset_register(
        actor=sam, name="raw", uploaded_file=csv_upload(small_flchain_csv()), epsilon_cap="1.0"
    )
    SourceDataset.objects.filter(pk=registered.pk).update(entity_column="age")
    return registered


@pytest.mark.parametrize("who", ["sam", "olivia", "alice"])
def test_list_and_detail_columns_are_the_declared_serializers_byte_for_byte(
    who: str, request: Any, api: Callable[[Any], Any], dataset: SourceDataset, undeclared: SourceDataset
) -> None:
    user = request.getfixturevalue(who)
    client = api(user)
    listed = client.get("/api/v1/datasets/")
    assert listed.status_code == 200
    items = {item["id"]: item for item in listed.json()["results"]}
    assert str(dataset.pk) in items
    for item_id, item in items.items():
        expected = _declared_columns(SourceDataset.objects.get(pk=item_id), user)
        assert json.dumps(item["columns"]) == json.dumps(expected), who
        detail = client.get(f"/api/v1/datasets/{item_id}/").json()
        assert json.dumps(detail["columns"]) == json.dumps(expected), who
    # Custodians see profiles and exact figures; a scientist neither (the fields are there, empty).
    columns = items[str(dataset.pk)]["columns"]
    if who == "alice":
        assert all(c["profile"] is None and c["distinct"] is None for c in columns)
    else:
        assert all(c["profile"] is not None for c in columns)
    if str(undeclared.pk) in items:
        entity = [c["name"] for c in items[str(undeclared.pk)]["columns"] if c["entity"]]
        assert entity == ["age"]
