"""Update validation for one federated round: schema check and norm outliers.

Every update a site sends is checked before aggregation:

* schema: the same number of arrays as the global model, each with the global array's shape, a
  floating dtype and only finite values;
* norm outlier: the L2 norm of the update (site parameters minus the round's global parameters)
  is more than `NORM_OUTLIER_FACTOR` times the median norm of the round's schema-valid updates.
  The median is only meaningful with three or more updates; with fewer the rule is not applied
  (a two-site round cannot tell which of two diverging updates is the odd one).

A rejected update is excluded from the round and reported with its reason; it never reaches the
aggregate. Limit (stated honestly): with secure aggregation (SecAgg+) the server only ever sees the
sum of the masked updates, so neither rule can look at an individual update; there, influence is
bounded by client-side fixed clipping (each site's update is clipped to the clipping norm before
it is masked) and only the aggregate is schema-checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORM_OUTLIER_FACTOR = 4.0
MIN_UPDATES_FOR_OUTLIER_RULE = 3


@dataclass(frozen=True)
class Verdict:
    index: int
    norm: float | None
    reason: str  # "" when accepted


def schema_problem(update: list[np.ndarray], reference: list[np.ndarray]) -> str:
    """Why `update` does not fit the model's schema, or "" when it does."""
    if len(update) != len(reference):
        return f"schema: {len(update)} arrays, expected {len(reference)}"
    for position, (array, ref) in enumerate(zip(update, reference, strict=True)):
        if array.shape != ref.shape:
            return f"schema: array {position} has shape {array.shape}, expected {ref.shape}"
        if not np.issubdtype(array.dtype, np.floating):
            return f"schema: array {position} has dtype {array.dtype}, expected a float"
        if not np.all(np.isfinite(array)):
            return f"schema: array {position} has non-finite values"
    return ""


def update_norm(update: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(update, reference, strict=True))))


def validate_round(
    updates: list[list[np.ndarray]], reference: list[np.ndarray], *, factor: float = NORM_OUTLIER_FACTOR
) -> list[Verdict]:
    """One verdict per update, in order: schema first, then the norm rule against the median."""
    verdicts: list[Verdict] = []
    norms: dict[int, float] = {}
    for index, update in enumerate(updates):
        problem = schema_problem(update, reference)
        if problem:
            verdicts.append(Verdict(index, None, problem))
            continue
        norms[index] = update_norm(update, reference)
        verdicts.append(Verdict(index, norms[index], ""))
    if len(norms) < MIN_UPDATES_FOR_OUTLIER_RULE:
        return verdicts
    median = float(np.median(list(norms.values())))
    limit = factor * median
    out: list[Verdict] = []
    for verdict in verdicts:
        if verdict.norm is not None and verdict.norm > limit and verdict.norm > 0:
            ratio = verdict.norm / median if median > 0 else float("inf")
            reason = f"norm outlier: {ratio:.1f}x the round's median update norm (limit {factor:g}x)"
            out.append(Verdict(verdict.index, verdict.norm, reason))
        else:
            out.append(verdict)
    return out


def norm_summary(norms: list[float]) -> dict[str, float] | None:
    if not norms:
        return None
    return {"min": float(np.min(norms)), "median": float(np.median(norms)), "max": float(np.max(norms))}
