"""What a release protects and what it does not: its privacy block (NIST SP 800-226 fields).

A privacy officer signs a DP release because of the numbers printed on it, so the block says
exactly what holds: DP or not, the privacy unit and neighbouring relation, epsilon and delta, the
DP flavour, the mechanisms with their library versions, the trust model, the source's total spend
so far, and what the guarantee covers (the synthetic rows) and what it does not (everything else
computed on the real data: the validation report, the gate verdict, the intake profile, the
tiering facts). Fixed at publication (`Release.privacy`); computed again for releases published
before the block existed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from approvals.dp import is_custodian
from generation.models import ATTO, MICRO, SourceDataset, SynthesisJob

PRIVACY_KEYS = (
    "dp",
    "unit",
    "neighbouring",
    "epsilon",
    "delta",
    "flavour",
    "mechanisms",
    "covers",
    "not_covered",
    "source_spent",
)
_MECHANISM_KEYS = ("step", "mechanism", "library", "version", "epsilon", "delta", "sensitivity")

TRUST_MODEL = (
    "central: SynthGate's workers read the real data and add the noise; the guarantee holds against "
    "anyone who sees only the release, not against the portal's operators or its database"
)
COVERS_DP = [
    "The synthetic rows of this release, and anything computed from them alone.",
]
NOT_COVERED_COMMON = [
    "The validation report and the release gate's verdict: computed on the real training and "
    "holdout rows, outside the privacy budget.",
    "The source's intake profile (row count, column statistics) shown to data custodians.",
    "The tiering facts the request was reviewed on (source row count, re-identification "
    "estimate, small cells).",
    "The declared domain (kinds, bounds, categories, units): public metadata written by the data "
    "steward, not derived from the records under privacy.",
]
NOT_COVERED_NON_DP = (
    "The synthetic rows themselves: this release is not differentially private, so no adversary "
    "is bounded. Its privacy rests only on the release gate's empirical tests (exact copies, "
    "nearest-neighbour distances, membership inference), which show that these attacks failed on "
    "this release, not that every attack would."
)
NOT_COVERED_RECORD_UNIT = (
    "Patients with several rows: the dataset has no declared patient (entity) column, so the "
    "guarantee is per record; a patient with k rows is protected only at about k times epsilon."
)
NOT_COVERED_LEDGER = (
    "Other releases from the same source: each spends from the same ledger, so together they are "
    "protected at the source's total spent (source_spent), not at this release's epsilon."
)


def release_privacy(*, job: SynthesisJob, dataset: SourceDataset) -> dict[str, Any]:
    """The privacy block of the release `job` produced from `dataset` (a source version)."""
    spent = _source_spent(dataset)
    if job.epsilon_micro is None:
        return _non_dp_block(spent)
    facts = _privacy_facts(job)
    entity = str(facts.get("entity_column") or job.entity_column or "")
    unit = str(facts.get("unit") or ("patient" if entity else "record"))
    epsilon = _number(Decimal(job.epsilon_micro) / MICRO)
    delta = _number(Decimal(job.delta_atto or 0) / ATTO)
    not_covered = list(NOT_COVERED_COMMON)
    if unit != "patient":
        not_covered.append(NOT_COVERED_RECORD_UNIT)
    not_covered.append(NOT_COVERED_LEDGER)
    return {
        "dp": True,
        "unit": unit,
        "neighbouring": str(facts.get("neighbouring") or _neighbouring(unit, facts)),
        "epsilon": epsilon,
        "delta": delta,
        "flavour": str(facts.get("flavour") or _flavour(delta)),
        "mechanisms": [_mechanism(m) for m in facts.get("mechanisms") or [] if isinstance(m, dict)],
        "covers": list(COVERS_DP),
        "not_covered": not_covered,
        "source_spent": spent,
        "trust_model": TRUST_MODEL,
    }


def release_privacy_of(release: Any) -> dict[str, Any]:
    """The block stored with a release, or (releases published before it existed) computed now."""
    stored = getattr(release, "privacy", None)
    if isinstance(stored, dict) and stored.get("dp") is not None:
        return stored
    if release.job is None or release.dataset is None:  # a study's model: its block is always stored
        return dict(stored) if isinstance(stored, dict) else {}
    return release_privacy(job=release.job, dataset=release.dataset)


# What a DP synthesizer's receipt facts may say to anyone: the declared privacy parameters. Other
# keys a synthesizer adds (rows dropped by the per-patient cap, say) are counts of real rows.
_PUBLIC_FACT_KEYS = (
    "dp",
    "unit",
    "entity_column",
    "max_rows_per_entity",
    "neighbouring",
    "epsilon",
    "delta",
    "flavour",
    "mechanisms",
)


def receipt_visible_to(*, user: Any, receipt: dict[str, Any], is_dp: bool) -> dict[str, Any]:
    """A release's receipt as `user` may see it: custodians all of it; for a DP release, others
    get the synthesizer's privacy facts without anything counted on the real rows."""
    facts = receipt.get("privacy_facts")
    if not is_dp or is_custodian(user) or not isinstance(facts, dict):
        return receipt
    return {**receipt, "privacy_facts": {k: facts[k] for k in _PUBLIC_FACT_KEYS if k in facts}}


def _non_dp_block(spent: dict[str, float]) -> dict[str, Any]:
    return {
        "dp": False,
        "unit": None,
        "neighbouring": None,
        "epsilon": None,
        "delta": None,
        "flavour": None,
        "mechanisms": [],
        "covers": [],
        "not_covered": [NOT_COVERED_NON_DP, *NOT_COVERED_COMMON],
        "source_spent": spent,
        "trust_model": TRUST_MODEL,
    }


def _privacy_facts(job: SynthesisJob) -> dict[str, Any]:
    """The DP synthesizer's facts from the job's receipt. Read fresh when the object in hand
    predates them: the receipt is written by a conditional UPDATE in the same transaction as
    publication, which does not refresh the caller's instance."""
    receipt = job.receipt or {}
    if "privacy_facts" not in receipt and job.pk is not None:
        receipt = SynthesisJob.objects.filter(pk=job.pk).values_list("receipt", flat=True).first() or {}
    facts = receipt.get("privacy_facts") if isinstance(receipt, dict) else None
    return facts if isinstance(facts, dict) else {}


def source_spent_of(dataset: SourceDataset) -> dict[str, float]:
    """What `dataset`'s population has spent so far, every release and estimate (basic composition)."""
    return _source_spent(dataset)


def _source_spent(dataset: SourceDataset) -> dict[str, float]:
    """The ledger owner's totals (a later version spends its population's budget)."""
    row = (
        SourceDataset.objects.filter(pk=dataset.ledger_owner_id)
        .values("epsilon_spent_micro", "delta_spent_atto")
        .first()
    ) or {"epsilon_spent_micro": 0, "delta_spent_atto": 0}
    return {
        "epsilon": _number(Decimal(row["epsilon_spent_micro"]) / MICRO),
        "delta": _number(Decimal(row["delta_spent_atto"]) / ATTO),
    }


def _neighbouring(unit: str, facts: dict[str, Any]) -> str:
    if unit == "patient":
        cap = facts.get("max_rows_per_entity")
        bound = f" (at most {cap} rows per patient; rows beyond the cap were left out)" if cap else ""
        return f"add or remove one patient with all of their rows{bound}"
    return "add or remove one record (one row)"


def _flavour(delta: float) -> str:
    return "approximate (epsilon, delta)-DP" if delta else "pure epsilon-DP"


def _mechanism(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _json_safe(item.get(key)) for key in _MECHANISM_KEYS}


def _json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _number(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _number(value: Decimal) -> float | int:
    """A JSON number: whole values as int (50, not 50.0), others as the nearest float."""
    return int(value) if value == value.to_integral_value() else float(value)
