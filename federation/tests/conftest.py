"""Three sites, each a flchain slice registered, declared and signed off by its own steward."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from conftest import csv_upload, small_flchain_csv

FEATURES = ["age", "sex", "kappa", "lambda", "creatinine"]
TARGET = "death"
SITE_NAMES = ("North", "Lake", "Valley")


@pytest.fixture
def stewards(make_user: Callable[..., Any]) -> list[Any]:
    return [make_user(f"steward_{n.lower()}", "data_steward", f"{n} Hospital") for n in SITE_NAMES]


@pytest.fixture
def sites(stewards: list[Any]) -> list[Any]:
    from federation.services import site_register
    from generation.public_declarations import FLCHAIN
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    frame = pd.read_csv(io.BytesIO(small_flchain_csv(900)))
    made = []
    for index, (name, steward) in enumerate(zip(SITE_NAMES, stewards, strict=True)):
        part = frame.iloc[index * 300 : (index + 1) * 300]
        dataset = dataset_register(
            actor=steward,
            name=f"flchain {name}",
            uploaded_file=csv_upload(part.to_csv(index=False).encode(), name=f"{name}.csv"),
            epsilon_cap="50",
        )
        dataset_update_columns(actor=steward, dataset_id=dataset.pk, changes=FLCHAIN)
        dataset = dataset_sign_off(actor=steward, dataset_id=dataset.pk)
        made.append(site_register(actor=steward, name=name, dataset_id=dataset.pk))
    return made


@pytest.fixture
def file_study(alice: Any, sites: list[Any]) -> Callable[..., Any]:
    from federation.services import StudyInput, study_file

    def file(**overrides: Any) -> Any:
        values: dict[str, Any] = {
            "title": "Mortality across three hospitals",
            "purpose": "A shared mortality model without pooling rows",
            "site_ids": [s.pk for s in sites],
            "features": FEATURES,
            "target": TARGET,
            "rounds": 3,
            "min_sites": 2,
            "clipping_norm": 1.0,
            "noise_multiplier": 2.0,
            "secure_aggregation": True,
        }
        values.update(overrides)
        return study_file(actor=alice, data=StudyInput(**values))

    return file


@pytest.fixture
def submitted_study(file_study: Callable[..., Any], alice: Any) -> Any:
    from federation.services import study_submit

    return study_submit(actor=alice, study_id=file_study().pk)


@pytest.fixture
def approve_all(olivia: Any, stewards: list[Any]) -> Callable[[Any], Any]:
    from federation.services import study_decide

    def approve(study: Any) -> Any:
        for who in (olivia, *stewards):
            study = study_decide(actor=who, study_id=study.pk, decision="approve")
        return study

    return approve
