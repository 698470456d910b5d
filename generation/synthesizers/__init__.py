"""Synthesizers behind one interface, chosen per request by name.

DP synthesizers are named `dp_*`, have `is_dp = True` and are constructed with the epsilon the job
reserved; they split fit (the mechanisms) from sample (post-processing), save what they released
(`released_state()`, restored with `from_released_state`), and report what they spent with
`epsilon_spent()`, `delta_spent()` and `privacy_facts()` (dp_base). Open-source SDV synthesizers are
never DP and are labelled so. docs/synthesizers.md describes each one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from generation.synthesizers.base import ColumnSpec, ProgressFn, Synthesizer
from generation.synthesizers.dp_aim import DPAIMSynthesizer
from generation.synthesizers.dp_base import DPSynthesizer
from generation.synthesizers.dp_copula import DPCopulaSynthesizer
from generation.synthesizers.dp_mst import DPMSTSynthesizer
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
        DPMSTSynthesizer,
        DPAIMSynthesizer,
    )
}


# Not a synthesizer: a request for a synthetic file made outside SynthGate, which the requester
# uploads once the request is approved. It goes through the same validation and gate; nothing is
# claimed about how it was made (never DP), so it is not in REGISTRY and nothing synthesizes it.
EXTERNAL_UPLOAD = "external_upload"
EXTERNAL_UPLOAD_LABEL = "Bring your own: upload a synthetic file made elsewhere (not DP)"


def is_known_synthesizer(name: str) -> bool:
    """A name a request may carry: a registered synthesizer, or an external upload."""
    return name in REGISTRY or name == EXTERNAL_UPLOAD


def is_dp_synthesizer(name: str) -> bool:
    cls = REGISTRY.get(name)
    return bool(cls and cls.is_dp)


def synthesizer_label(name: str) -> str:
    if name == EXTERNAL_UPLOAD:
        return EXTERNAL_UPLOAD_LABEL
    cls = REGISTRY.get(name)
    return str(cls.label) if cls else name


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
        return cls(epsilon=epsilon, options=options)
    if epsilon is not None:
        raise ValueError(f"Synthesizer {name!r} is not differentially private; it cannot honour an epsilon.")
    return cls(options=options)


def dp_synthesizer_for(
    name: str, *, epsilon: Decimal | float | str | None, options: Options | None = None
) -> DPSynthesizer:
    """`synthesizer_for` on the DP path, typed as what that path calls (`fit`, `released_state`)."""
    synthesizer = synthesizer_for(name, epsilon=epsilon, options=options)
    # synthesizer_for already refuses an epsilon for a non-DP synthesizer; this holds every DP
    # synthesizer in REGISTRY to the DPSynthesizer interface the fit path relies on.
    if not isinstance(synthesizer, DPSynthesizer):
        raise ValueError(f"Synthesizer {name!r} is not differentially private.")
    return synthesizer


def validate_options(name: str, options: Options | None) -> dict[str, Any]:
    """The options a request may carry for synthesizer `name`, or ValueError saying what is wrong
    (an unknown key, a value outside the synthesizer's caps). For the edge (request forms and API):
    the same parsing the job runs, so a request is refused when it is filed, not when it runs."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown synthesizer {name!r}.") from None
    # Constructing validates; a DP synthesizer needs some epsilon to construct (nothing is spent).
    cls(epsilon=1, options=options) if cls.is_dp else cls(options=options)
    return dict(options or {})


def takes_time_budget(name: str) -> bool:
    """Whether synthesizer `name` trains for a time and so accepts `time_budget_s` (ctgan, tvae)."""
    return bool(getattr(REGISTRY.get(name), "takes_time_budget", False))


def with_time_budget(name: str, options: Options | None, seconds: int | None) -> dict[str, Any]:
    """`options` plus policy's synthesis time budget (`time_budget_s`) for a synthesizer that
    takes one (ctgan, tvae); unchanged for the others, which refuse unknown options. An explicit
    `time_budget_s` in the options is kept when it is the smaller."""
    given = dict(options or {})
    if seconds is None or not takes_time_budget(name):
        return given
    given["time_budget_s"] = min(int(seconds), int(given.get("time_budget_s", seconds)))
    return given


__all__ = [
    "EXTERNAL_UPLOAD",
    "EXTERNAL_UPLOAD_LABEL",
    "REGISTRY",
    "ColumnSpec",
    "DPSynthesizer",
    "dp_synthesizer_for",
    "ProgressFn",
    "Synthesizer",
    "is_dp_synthesizer",
    "is_known_synthesizer",
    "synthesizer_for",
    "synthesizer_label",
    "takes_time_budget",
    "validate_options",
    "with_time_budget",
]
