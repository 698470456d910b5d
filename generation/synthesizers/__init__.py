"""Synthesizers behind one interface, chosen per request by name.

DP synthesizers are named `dp_*`, have `is_dp = True` and are constructed with the epsilon the job
reserved; they report what they spent with `epsilon_spent()`. Open-source SDV synthesizers are never
DP and are labelled so. docs/synthesizers.md describes each one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from generation.synthesizers.base import ColumnSpec, ProgressFn, Synthesizer
from generation.synthesizers.dp_copula import DPCopulaSynthesizer
from generation.synthesizers.dp_mst import DPMSTSynthesizer, smartnoise_available
from generation.synthesizers.options import Options
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer
from generation.synthesizers.sdv_deep import CTGANSynthesizer, TVAESynthesizer
from generation.synthesizers.sdv_par import PARSynthesizer

REGISTRY: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (
        GaussianCopulaSynthesizer,
        CTGANSynthesizer,
        TVAESynthesizer,
        PARSynthesizer,
        DPCopulaSynthesizer,
    )
}
# Optional until smartnoise-synth is pinned (docs/synthesizers.md): listed only where it can run.
if smartnoise_available():
    REGISTRY[DPMSTSynthesizer.name] = DPMSTSynthesizer


def synthesizer_for(
    name: str, *, epsilon: Decimal | float | str | None = None, options: Options | None = None
) -> Synthesizer:
    """A new synthesizer instance (one per job: a DP instance spends its epsilon once).

    A DP synthesizer needs the epsilon the job reserved; a non-DP one refuses an epsilon, so a
    request can never believe it bought a guarantee the synthesizer does not give.
    """
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise KeyError(name) from None
    if cls.is_dp:
        if epsilon is None:
            raise ValueError(f"Synthesizer {name!r} is differentially private and needs an epsilon.")
        return cls(epsilon=epsilon, options=options)  # type: ignore[no-any-return]
    if epsilon is not None:
        raise ValueError(f"Synthesizer {name!r} is not differentially private; it cannot honour an epsilon.")
    return cls(options=options)  # type: ignore[no-any-return]


__all__ = ["REGISTRY", "ColumnSpec", "ProgressFn", "Synthesizer", "synthesizer_for"]
