"""Our column shapes and pair trends agree with SDMetrics within 0.02.

Column shapes are compared with the QualityReport's Column Shapes score directly (ours counts
missing values as a category; the test bounds what that changes on flchain, whose `chapter` is 72%
missing). For pair trends there are two comparisons, because SDMetrics 0.32 disagrees with itself:
its QualityReport bins a continuous column on each table's own range, while its maintainers'
specification (sdv-dev/SDMetrics#368) and its own ContingencySimilarity(continuous_column_names=)
bin both tables on the real data's edges, which is what the gate uses. So:

- our `score_sdmetrics` (their QualityReport's binning) must match the QualityReport within 0.02;
- our gated `score` must match SDMetrics' own pair metrics with aligned bins within 0.02.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
from sdmetrics.reports.single_table import QualityReport

from generation.synthesizers import ColumnSpec
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer
from validation.metrics.columns import ColumnInfo
from validation.metrics.utility import (
    REAL_ASSOCIATION_THRESHOLD,
    REAL_CORRELATION_THRESHOLD,
    column_pair_trends,
    column_shapes,
    mean_score,
    pair_trend_score,
)
from validation.tests.conftest import flchain

KINDS = {
    "age": "numeric",
    "chapter": "categorical",
    "creatinine": "numeric",
    "flc.grp": "numeric",
    "kappa": "numeric",
    "lambda": "numeric",
    "mgus": "boolean",
    "sample.yr": "numeric",
    "sex": "categorical",
    "death": "boolean",
    "futime": "numeric",
}
INFOS = [ColumnInfo(name, kind) for name, kind in KINDS.items()]
SDTYPES = {"numeric": "numerical", "categorical": "categorical", "boolean": "categorical"}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return flchain().sample(n=2000, random_state=5).reset_index(drop=True)


def gaussian_copula(real: pd.DataFrame) -> pd.DataFrame:
    specs = [ColumnSpec(name=name, kind=kind) for name, kind in KINDS.items()]
    return GaussianCopulaSynthesizer().fit_sample(
        real, columns=specs, rows=2000, seed=9, progress=lambda f, s: None
    )


def noisy_copy(real: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    frame = real.copy()
    for name in ("age", "creatinine", "kappa", "lambda", "futime"):
        frame[name] = frame[name] + rng.normal(0, 0.1 * frame[name].std(), len(frame))
    flip = rng.random(len(frame)) < 0.1
    frame.loc[flip, "sex"] = frame.loc[flip, "sex"].map({"F": "M", "M": "F"})
    return frame


def sdmetrics_scores(real: pd.DataFrame, synthetic: pd.DataFrame) -> tuple[float, float]:
    metadata = {"columns": {name: {"sdtype": SDTYPES[kind]} for name, kind in KINDS.items()}}
    report = QualityReport()
    report.generate(real, synthetic, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    return float(properties["Column Shapes"]), float(properties["Column Pair Trends"])


def sdmetrics_aligned_pairs(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    """SDMetrics' own pair metrics, continuous columns binned on the real edges (their spec)."""
    scores = []
    names = list(KINDS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            continuous = [n for n in (a, b) if KINDS[n] == "numeric"]
            if len(continuous) == 2:
                scores.append(
                    CorrelationSimilarity.compute(
                        real[[a, b]], synthetic[[a, b]], real_correlation_threshold=REAL_CORRELATION_THRESHOLD
                    )
                )
            else:
                scores.append(
                    ContingencySimilarity.compute(
                        real[[a, b]],
                        synthetic[[a, b]],
                        continuous_column_names=continuous or None,
                        real_association_threshold=REAL_ASSOCIATION_THRESHOLD,
                    )
                )
    return float(np.nanmean(scores))


@pytest.fixture(scope="module", params=["gaussian_copula", "noisy_copy"])
def compared(request: pytest.FixtureRequest, real: pd.DataFrame) -> dict[str, float]:
    synthetic = gaussian_copula(real) if request.param == "gaussian_copula" else noisy_copy(real)
    pairs = column_pair_trends(real, synthetic, INFOS)
    shapes, report_pairs = sdmetrics_scores(real, synthetic)
    return {
        "ours_shapes": mean_score(column_shapes(real, synthetic, INFOS)) or 0.0,
        "ours_pairs": pair_trend_score(pairs) or 0.0,
        "ours_pairs_sdmetrics_binning": pair_trend_score(pairs, sdmetrics=True) or 0.0,
        "quality_report_shapes": shapes,
        "quality_report_pairs": report_pairs,
        "sdmetrics_aligned_pairs": sdmetrics_aligned_pairs(real, synthetic),
    }


def test_column_shapes_agree_with_the_quality_report_within_0_02(compared: dict[str, float]) -> None:
    assert compared["ours_shapes"] == pytest.approx(compared["quality_report_shapes"], abs=0.02)
    assert 0.5 < compared["ours_shapes"] < 1.0  # a real comparison, not two trivially perfect scores


def test_pair_trends_with_its_binning_agree_with_the_quality_report_within_0_02(
    compared: dict[str, float],
) -> None:
    assert compared["ours_pairs_sdmetrics_binning"] == pytest.approx(
        compared["quality_report_pairs"], abs=0.02
    )


def test_gated_pair_trends_agree_with_sdmetrics_pair_metrics_on_aligned_bins_within_0_02(
    compared: dict[str, float],
) -> None:
    assert compared["ours_pairs"] == pytest.approx(compared["sdmetrics_aligned_pairs"], abs=0.02)
