"""Demo sites for `make run`: one shared table split into three sites, each under its own steward.

Called by portal's seed_demo (which owns the demo logins). The split is by a declared site column
when the table has one, else at random with a fixed seed; each part is registered as its own
source dataset by its own steward, declared alike, signed off and registered as a site, so a
newcomer can file and run a study straight away.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.files import File

from core.roles import PortalUser
from federation.models import Site
from federation.services import site_register
from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

SITE_NAMES = ("North Hospital", "Lakeside Clinic", "Valley Medical Centre")
SPLIT_SEED = 20260415


def split_table(frame: Any, *, parts: int, site_column: str = "", seed: int = SPLIT_SEED) -> list[Any]:
    """`parts` disjoint pieces of `frame`: by the values of `site_column` (dropped afterwards) when
    given, else a seeded random permutation cut into near-equal pieces."""
    import numpy as np

    if site_column:
        values = sorted(frame[site_column].dropna().unique().tolist())[:parts]
        return [
            frame[frame[site_column] == v].drop(columns=[site_column]).reset_index(drop=True) for v in values
        ]
    order = np.random.default_rng(seed).permutation(len(frame))
    return [frame.iloc[chunk].reset_index(drop=True) for chunk in np.array_split(order, parts)]


def seed_federation_demo(
    *,
    stewards: Sequence[PortalUser],
    source_file: Path,
    declarations: list[dict[str, Any]],
    epsilon_cap: str,
    site_column: str = "",
) -> int:
    """Register one site per steward (idempotent: existing sites are left alone). Returns how many
    sites were created."""
    import pandas as pd

    if all(Site.objects.filter(name=name).exists() for name in SITE_NAMES[: len(stewards)]):
        return 0
    frame = pd.read_csv(source_file)
    pieces = split_table(frame, parts=len(stewards), site_column=site_column)
    created = 0
    for name, steward, piece in zip(SITE_NAMES, stewards, pieces, strict=False):
        if Site.objects.filter(name=name).exists():
            continue
        buffer = io.BytesIO(piece.to_csv(index=False).encode())
        dataset = dataset_register(
            actor=steward,
            name=f"flchain at {name}",
            uploaded_file=File(buffer, name=f"{name.lower().replace(' ', '_')}.csv"),
            epsilon_cap=epsilon_cap,
            description=f"Demo site {name}: its share of the public flchain table.",
        )
        dataset = dataset_update_columns(actor=steward, dataset_id=dataset.pk, changes=declarations)
        dataset = dataset_sign_off(actor=steward, dataset_id=dataset.pk)
        site_register(actor=steward, name=name, dataset_id=dataset.pk, description="Demo site")
        created += 1
    return created
