"""The DP side of a request, checked when it is filed, previewed, submitted and approved.

- Domains: a DP synthesizer runs only on columns whose domain a steward declared (or a DP estimate
  charged to the ledger produced); see generation.policies (dp_domain_refusal).
- Delta: (epsilon, delta) synthesizers take a delta (default 1e-9); pure ones refuse it.
- Budget: a request's epsilon and delta are compared with what is left on the dataset's ledger
  owner, so the requester learns it does not fit before reviewers spend time on it.
- Real-data values: for a DP request, nobody but custodians sees the values of a validation
  report (computed on the real rows, outside the budget): see `dp_gate_visible_to`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.errors import Conflict, ValidationFailed
from generation.modeling import MODEL_FAMILIES
from generation.models import SourceDataset
from generation.policies import dp_domain_refusal, sees_exact_figures
from generation.services import budget_remaining, delta_to_atto, format_delta, format_epsilon
from generation.synthesizers import REGISTRY, is_dp_synthesizer
from validation.selectors import gate_visible_to, metrics_visible_to

# Synthesizers whose guarantee is (epsilon, delta): they take a delta, and the ledger charges it.
# A synthesizer class may also say so itself with `uses_delta = True`.
APPROXIMATE_DP = frozenset({"dp_mst", "dp_aim"})
DEFAULT_DELTA = Decimal("1e-9")
# The range the (epsilon, delta) synthesizers accept (generation.synthesizers.dp_mst's `delta`
# option): refused at filing rather than at the worker, after the budget was reserved.
MIN_DELTA = Decimal("1e-12")
MAX_DELTA = Decimal("1e-5")


def uses_delta(synthesizer: str) -> bool:
    cls = REGISTRY.get(synthesizer)
    if cls is None or not cls.is_dp:
        return False
    return bool(getattr(cls, "uses_delta", synthesizer in APPROXIMATE_DP))


def is_custodian(user: Any) -> bool:
    """Privacy officers, data stewards, auditors and admins answer for the source data and may see
    figures computed on it (core.roles.SEES_EXACT_STATISTICS); everyone else is outside custody."""
    return sees_exact_figures(user)


# --- Delta -----------------------------------------------------------------------------------------


def validate_delta(synthesizer: str, delta: Any) -> int | None:
    """The request's delta in 1e-18 units: the default for (epsilon, delta) synthesizers when
    omitted, None for the others (which refuse one)."""
    if not uses_delta(synthesizer):
        if delta not in (None, ""):
            kind = "pure epsilon-DP" if is_dp_synthesizer(synthesizer) else "not differentially private"
            raise ValidationFailed(
                f"{synthesizer} is {kind}, so it spends no delta; leave delta empty, or choose an "
                f"(epsilon, delta) synthesizer ({', '.join(sorted(APPROXIMATE_DP))}).",
                fields={"delta": "not_applicable"},
            )
        return None
    return _delta_in_range(delta, synthesizer)


def _delta_in_range(delta: Any, name: str) -> int:
    """A delta in 1e-18 units: the default when omitted, else the given one within
    [MIN_DELTA, MAX_DELTA] (for `name`, a synthesizer or a model family, in the refusal)."""
    if delta in (None, ""):
        delta = DEFAULT_DELTA
    if isinstance(delta, float):
        delta = repr(delta)  # "1e-09", not the binary expansion
    atto = delta_to_atto(delta)
    if not MIN_DELTA * 10**18 <= atto <= MAX_DELTA * 10**18:
        raise ValidationFailed(
            f"delta must be between {MIN_DELTA} and {MAX_DELTA} for {name} (the default is "
            f"{DEFAULT_DELTA}; smaller is more private).",
            fields={"delta": "out_of_range"},
        )
    return atto


# --- Declared domains ------------------------------------------------------------------------------


def signed_off_specs(dataset: SourceDataset, columns: list[str]) -> list[dict[str, Any]]:
    """The requested columns as the dataset's latest sign-off snapshotted them (what a job gets)."""
    version = dataset.classification_versions.filter(number=dataset.classification_version).first()
    if version is None:
        return [{"name": name} for name in columns]
    by_name = {c.get("name"): c for c in version.columns}
    return [by_name.get(name) or {"name": name} for name in columns]


def domain_refusal(dataset: SourceDataset, columns: list[str], synthesizer: str) -> str | None:
    if not is_dp_synthesizer(synthesizer):
        return None
    return dp_domain_refusal(signed_off_specs(dataset, columns))


def check_domain_declared(dataset: SourceDataset, columns: list[str], synthesizer: str) -> None:
    """409 naming the columns whose domain only a profile suggested (read from the data)."""
    refusal = domain_refusal(dataset, columns, synthesizer)
    if refusal:
        raise Conflict(refusal, code="dp_domain_not_declared", fields={"columns": "dp_domain_not_declared"})


# --- Budget ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetCheck:
    """A DP request's epsilon (and delta) against what is left on the dataset's ledger."""

    fits: bool
    epsilon_needed: str
    epsilon_remaining: str
    delta_needed: str | None
    delta_remaining: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "epsilon_needed": self.epsilon_needed,
            "epsilon_remaining": self.epsilon_remaining,
            "delta_needed": self.delta_needed,
            "delta_remaining": self.delta_remaining,
            "message": self.message,
        }


def budget_check(
    dataset: SourceDataset, epsilon_micro: int | None, delta_atto: int | None
) -> BudgetCheck | None:
    """None for non-DP requests (nothing to spend) and DP ones without an epsilon yet."""
    if epsilon_micro is None:
        return None
    eps_left, delta_left = budget_remaining(dataset)
    delta = delta_atto or 0
    fits = epsilon_micro <= eps_left and delta <= delta_left
    needs = f"epsilon {format_epsilon(epsilon_micro)}"
    left = f"{format_epsilon(max(eps_left, 0))} left"
    if delta:
        needs += f" and delta {format_delta(delta)}"
        left = f"epsilon {format_epsilon(max(eps_left, 0))} and delta {format_delta(max(delta_left, 0))} left"
    if fits:
        message = f"This request needs {needs}; the dataset's privacy budget has {left}."
    else:
        message = (
            f"Not enough privacy budget: this request needs {needs}, {left} on the dataset's budget. "
            "Ask for a smaller epsilon"
            + (" or delta" if delta else "")
            + ", or ask the data steward for a budget increase."
        )
    return BudgetCheck(
        fits=fits,
        epsilon_needed=format_epsilon(epsilon_micro),
        epsilon_remaining=format_epsilon(max(eps_left, 0)),
        delta_needed=format_delta(delta) if delta else None,
        delta_remaining=format_delta(max(delta_left, 0)),
        message=message,
    )


def check_budget_fits(dataset: SourceDataset, epsilon_micro: int | None, delta_atto: int | None) -> None:
    """409 when the request cannot be paid from what is left (checked again, exactly, at approval)."""
    check = budget_check(dataset, epsilon_micro, delta_atto)
    if check is not None and not check.fits:
        raise Conflict(
            check.message,
            code="budget_exhausted",
            fields={"epsilon_remaining": check.epsilon_remaining, "delta_remaining": check.delta_remaining},
        )


# --- Reports of DP requests -------------------------------------------------------------------------


def dp_gate_visible_to(*, user: Any, gate: dict[str, Any], is_dp: bool) -> dict[str, Any]:
    """The gate as `user` may see it. For a DP request, values (computed on the real rows and
    outside the budget) go to custodians only, whatever the general report rules say."""
    visible = gate_visible_to(user=user, gate=gate)
    if not is_dp or is_custodian(user):
        return visible
    return {**visible, "checks": [{**c, "value": None} for c in visible.get("checks") or []]}


def dp_metrics_visible_to(
    *, user: Any, metrics: dict[str, Any], checks: list[dict[str, Any]], is_dp: bool
) -> dict[str, Any]:
    """Metrics as `user` may see them; for a DP request, a non-custodian gets the pass/fail
    summary only (never a value computed on the real rows)."""
    if is_dp and not is_custodian(user):
        return metrics_visible_to(user=None, metrics=metrics, checks=checks)  # the coarse view
    return metrics_visible_to(user=user, metrics=metrics, checks=checks)


def validate_model_delta(family: str, delta: Any) -> int | None:
    """A dp_model request's delta in 1e-18 units: for an (epsilon, delta) family (DP-SGD) the
    portal's default delta when omitted (far below 1 / n for any table), reserved with epsilon at
    approval; None for the pure epsilon-DP families, which refuse one."""
    if not MODEL_FAMILIES[family].uses_delta:
        if delta not in (None, ""):
            approximate = ", ".join(sorted(name for name, f in MODEL_FAMILIES.items() if f.uses_delta))
            raise ValidationFailed(
                f"{family} takes no delta: the model is pure epsilon-DP, and its other privacy "
                "parameters (bounds, norms, classes) come from the data steward's declarations. "
                f"Leave delta empty, or choose an (epsilon, delta) model family ({approximate}).",
                fields={"delta": "not_applicable"},
            )
        return None
    return _delta_in_range(delta, family)
