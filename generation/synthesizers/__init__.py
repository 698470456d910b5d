"""Synthesizers behind one interface, chosen per request by name.

DP synthesizers (named `dp_*`, with `is_dp = True`) arrive with the synthesis-engine issue.
Open-source SDV synthesizers are never DP and are labelled so.
"""

from __future__ import annotations

from generation.synthesizers.base import ColumnSpec, ProgressFn, Synthesizer
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer

REGISTRY: dict[str, type[Synthesizer]] = {
    GaussianCopulaSynthesizer.name: GaussianCopulaSynthesizer,
}


def synthesizer_for(name: str) -> Synthesizer:
    try:
        return REGISTRY[name]()
    except KeyError:
        raise KeyError(name) from None


__all__ = ["REGISTRY", "ColumnSpec", "ProgressFn", "Synthesizer", "synthesizer_for"]
