"""Released values look like the source: declared decimals and allowed values (issue 12, item 2).

A coma score that takes a handful of values must not come out on every integer of its range, and a
lab value recorded to 2 decimals must not come out as 3.624741528961639. DP synthesizers shape
from the declaration only; non-DP ones also learn precision and small supports from the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from generation.choices import ColumnKind
from generation.models import DatasetColumn
from generation.services import dataset_update_columns
from generation.synthesizers import ColumnSpec, synthesizer_for
from generation.synthesizers.dp_domain import spec_from_json, spec_to_json
from generation.synthesizers.shaping import ValueShape, recorded_decimals, shape_values

GCS = (3, 6, 9, 12, 15)


@pytest.fixture(scope="module")
def clinical() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    gcs = rng.choice(GCS, size=n)
    return pd.DataFrame(
        {
            "gcs": gcs.astype(float),
            "creatinine": np.round(rng.lognormal(0, 0.4, n) + 0.01 * gcs, 2),
            "age": rng.integers(18, 90, n),
            "died": (rng.random(n) < 0.3 + 0.02 * (15 - gcs)).astype(int),
        }
    )


def declared(**extra: Any) -> list[ColumnSpec]:
    return [
        ColumnSpec("gcs", ColumnKind.NUMERIC, lower=0, upper=100, nullable=False, **extra),
        ColumnSpec("creatinine", ColumnKind.NUMERIC, lower=0, upper=20, nullable=False, decimals=2),
        ColumnSpec("age", ColumnKind.NUMERIC, lower=0, upper=120, nullable=False, integer=True),
        ColumnSpec("died", ColumnKind.BOOLEAN, categories=("0", "1"), nullable=False, outcome=True),
    ]


def decimals_of(series: pd.Series) -> int | None:
    return recorded_decimals(pd.to_numeric(series).dropna().to_numpy(dtype=float))


def test_gaussian_copula_keeps_scores_on_their_support_and_labs_at_their_precision(
    clinical: pd.DataFrame,
) -> None:
    # Nothing declared for gcs: the copula learns its five values from the data.
    synthetic = synthesizer_for("gaussian_copula").fit_sample(
        clinical, columns=declared(), rows=300, seed=1, progress=lambda f, s: None
    )

    assert set(synthetic["gcs"]) <= set(GCS)
    assert decimals_of(synthetic["creatinine"]) <= 2
    assert pd.api.types.is_integer_dtype(synthetic["age"])


def test_values_exported_from_single_precision_floats_keep_their_recorded_decimals() -> None:
    # As a hospital's export writes float32 labs: 8 decimals, not a computed value.
    rng = np.random.default_rng(4)
    recorded = pd.Series(np.round(rng.lognormal(0, 0.5, 400).astype(np.float32).astype(float), 8))
    frame = pd.DataFrame({"bili": recorded, "died": (rng.random(400) < 0.3).astype(int)})
    specs = [
        ColumnSpec("bili", ColumnKind.NUMERIC, lower=0, upper=50, nullable=False),
        ColumnSpec("died", ColumnKind.BOOLEAN, categories=("0", "1"), nullable=False),
    ]

    synthetic = synthesizer_for("gaussian_copula").fit_sample(
        frame, columns=specs, rows=300, seed=3, progress=lambda f, s: None
    )

    assert decimals_of(recorded) == 8
    assert decimals_of(synthetic["bili"]) is not None
    assert decimals_of(synthetic["bili"]) <= 8
    assert decimals_of(pd.Series([1 / 3, 2 / 7])) is None  # computed values are left as they are


def test_dp_copula_snaps_to_declared_allowed_values_and_rounds_to_declared_decimals(
    clinical: pd.DataFrame,
) -> None:
    synthetic = synthesizer_for("dp_copula", epsilon=1).fit_sample(
        clinical, columns=declared(allowed_values=GCS), rows=400, seed=2, progress=lambda f, s: None
    )

    assert set(synthetic["gcs"]) <= set(GCS)
    assert len(set(synthetic["gcs"])) > 1
    assert decimals_of(synthetic["creatinine"]) <= 2
    assert pd.api.types.is_integer_dtype(synthetic["gcs"])


def test_dp_shapes_come_from_the_declaration_never_from_the_data(clinical: pd.DataFrame) -> None:
    # No allowed values and no decimals declared for gcs: a DP release does not learn its support.
    synthetic = synthesizer_for("dp_copula", epsilon=5, options={"bins": 50}).fit_sample(
        clinical, columns=declared(), rows=400, seed=2, progress=lambda f, s: None
    )

    assert not set(synthetic["gcs"]) <= set(GCS)


def test_declared_shape_survives_the_dp_released_state() -> None:
    spec = ColumnSpec("gcs", ColumnKind.NUMERIC, 0, 100, decimals=1, allowed_values=(3.0, 15.0))

    assert spec_from_json(spec_to_json(spec)) == spec


@pytest.mark.parametrize(
    ("shape", "values", "expected"),
    [
        (ValueShape("x", support=(3.0, 9.0, 15.0)), [2.0, 6.0, 6.1, 14.0, np.nan], [3, 3, 9, 15, None]),
        (ValueShape("x", decimals=2), [3.624741528961639, np.nan], [3.62, None]),
        (ValueShape("x", integer=True), [7.4, 7.6], [7, 8]),
    ],
)
def test_shape_values(shape: ValueShape, values: list[float], expected: list[float | None]) -> None:
    shaped = shape_values(pd.Series(values), shape)

    assert [None if pd.isna(v) else v for v in shaped] == expected


# --- The declaration: service and API ------------------------------------------------------------


@pytest.mark.django_db
def test_a_steward_declares_decimals_and_allowed_values(dataset: Any, sam: Any) -> None:
    column = dataset.columns.filter(kind=ColumnKind.NUMERIC).first()
    dataset_update_columns(
        actor=sam,
        dataset_id=dataset.pk,
        changes=[
            {
                "name": column.name,
                "lower": 0,
                "upper": 200,
                "decimals": 2,
                "allowed_values": ["1", 2.5, 2.5],
                "integer": False,
            }
        ],
    )

    declared_now = DatasetColumn.objects.get(pk=column.pk).declared
    assert declared_now["decimals"] == 2
    assert declared_now["allowed_values"] == [1, 2.5]
    assert declared_now["source"] == "steward"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"decimals": 11}, "decimals"),
        ({"decimals": True}, "decimals"),
        ({"allowed_values": ["abc"]}, "allowed_values"),
        ({"lower": 0, "upper": 10, "allowed_values": [5, 11]}, "allowed_values"),
    ],
)
def test_bad_precision_declarations_are_refused(dataset: Any, sam: Any, change: dict, field: str) -> None:
    from core.errors import ValidationFailed

    column = dataset.columns.filter(kind=ColumnKind.NUMERIC).first()
    with pytest.raises(ValidationFailed) as refused:
        dataset_update_columns(actor=sam, dataset_id=dataset.pk, changes=[{"name": column.name, **change}])

    assert field in str(refused.value.fields)


@pytest.mark.django_db
def test_allowed_values_are_refused_on_a_categorical_column(dataset: Any, sam: Any) -> None:
    from core.errors import ValidationFailed

    column = dataset.columns.exclude(kind=ColumnKind.NUMERIC).exclude(kind=ColumnKind.DATETIME).first()
    with pytest.raises(ValidationFailed, match="numeric columns only"):
        dataset_update_columns(
            actor=sam, dataset_id=dataset.pk, changes=[{"name": column.name, "allowed_values": [1, 2]}]
        )


@pytest.mark.django_db
def test_the_columns_api_accepts_decimals_and_allowed_values(api: Any, dataset: Any, sam: Any) -> None:
    column = dataset.columns.filter(kind=ColumnKind.NUMERIC).first()
    response = api(sam).patch(
        f"/api/v1/datasets/{dataset.pk}/columns/",
        {
            "columns": [
                {"name": column.name, "lower": 0, "upper": 500, "decimals": 1, "allowed_values": [3, 4]}
            ]
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    assert DatasetColumn.objects.get(pk=column.pk).declared["allowed_values"] == [3, 4]
    bad = api(sam).patch(
        f"/api/v1/datasets/{dataset.pk}/columns/",
        {"columns": [{"name": column.name, "decimals": -1}]},
        format="json",
    )
    assert bad.status_code == 400


@pytest.mark.django_db
def test_the_review_page_declares_decimals_and_allowed_values(client: Any, sam: Any, dataset: Any) -> None:
    from generation.tests.test_declarations import review_post

    client.force_login(sam)
    page = client.get(f"/datasets/{dataset.pk}/review/").content.decode()
    assert "Decimals of kappa" in page
    assert "Allowed values of kappa" in page

    posted = review_post(dataset, kappa={"decimals": "2", "allowed_values": "1.5, 3\n7"})
    response = client.post(f"/datasets/{dataset.pk}/review/", posted)

    kappa = dataset.columns.get(name="kappa").declared
    assert response.status_code == 302
    assert (kappa["decimals"], kappa["allowed_values"]) == (2, [1.5, 3, 7])
