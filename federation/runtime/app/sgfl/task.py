"""The model every site trains: a logistic regression in numpy whose parameters are NDArrays
([weights (d,), bias (1,)]), the feature encoding from the steward's declarations, local training
and the per-site evaluation on the locked holdout (utility and membership inference, with
`validation.metrics.model`, which is Django-free).

Pure functions, no Flower and no Django: the ClientApp and the tests call them.

Encoding spec (JSON, built from the dataset's signed-off column declarations)::

    {"features": [{"name": "age", "kind": "numeric", "lower": 18, "upper": 90},
                  {"name": "sex", "kind": "categorical", "categories": ["F", "M"]}],
     "target": {"name": "readmitted", "positive": [1, "yes"]}}

Numeric values are scaled to [0, 1] by the declared bounds (clipped; missing values take 0.5);
categories are one-hot (an undeclared or missing category is all zeros). The target is 1 when its
value is one of `positive`.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

NDArrays = list[np.ndarray]


def spec_hash(spec: dict[str, Any]) -> str:
    """A stable hash of the encoding spec: every site must report the same one."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def n_features(spec: dict[str, Any]) -> int:
    width = 0
    for feature in spec["features"]:
        width += 1 if feature["kind"] == "numeric" else len(feature["categories"])
    return width


def missing_columns(frame: pd.DataFrame, spec: dict[str, Any]) -> list[str]:
    """Spec columns the site's table lacks (names only: the schema, never values)."""
    wanted = [feature["name"] for feature in spec["features"]] + [spec["target"]["name"]]
    return [name for name in wanted if name not in frame.columns]


def encode(frame: pd.DataFrame, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) for `frame` under `spec`; raises KeyError naming a missing column."""
    import pandas as pd  # imported here: SecAgg+ stages that never train do not pay for it

    absent = missing_columns(frame, spec)
    if absent:
        raise KeyError(f"columns missing from the site's table: {', '.join(absent)}")
    blocks: list[np.ndarray] = []
    for feature in spec["features"]:
        column = frame[feature["name"]]
        if feature["kind"] == "numeric":
            lower, upper = float(feature["lower"]), float(feature["upper"])
            span = upper - lower if upper > lower else 1.0
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            scaled = np.clip((values - lower) / span, 0.0, 1.0)
            blocks.append(np.where(np.isnan(scaled), 0.5, scaled)[:, None])
        elif feature["kind"] == "categorical":
            labels = column.astype("string")
            categories = [str(category) for category in feature["categories"]]
            blocks.append(
                np.stack([(labels == c).fillna(False).to_numpy(dtype=float) for c in categories], 1)
            )
        else:
            raise ValueError(f"unknown feature kind {feature['kind']!r}")
    target = spec["target"]
    positive = {str(value) for value in target["positive"]}
    y = frame[target["name"]].astype("string").isin(positive).to_numpy(dtype=float)
    X = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
    return X, y


def initial_parameters(width: int) -> NDArrays:
    return [np.zeros(width, dtype=np.float64), np.zeros(1, dtype=np.float64)]


def predict_proba(parameters: NDArrays, X: np.ndarray) -> np.ndarray:
    weights, bias = parameters
    logits = X @ weights + bias[0]
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))


def train(
    parameters: NDArrays, X: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float
) -> NDArrays:
    """Full-batch gradient descent on the mean log loss, starting from `parameters`."""
    weights, bias = parameters[0].astype(np.float64).copy(), parameters[1].astype(np.float64).copy()
    n = max(len(y), 1)
    for _ in range(epochs):
        error = predict_proba([weights, bias], X) - y
        weights -= learning_rate * (X.T @ error) / n
        bias -= learning_rate * np.array([error.sum() / n])
    return [weights, bias]


def update_norm(new: NDArrays, old: NDArrays) -> float:
    return float(np.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(new, old, strict=True))))


def scale_update(new: NDArrays, old: NDArrays, scale: float) -> NDArrays:
    """old + scale * (new - old): the poisoned update the tests send (test settings only)."""
    return [b + scale * (a - b) for a, b in zip(new, old, strict=True)]


def parameters_sha256(parameters: NDArrays) -> str:
    digest = hashlib.sha256()
    for array in parameters:
        contiguous = np.ascontiguousarray(array, dtype=np.float64)
        digest.update(str(contiguous.shape).encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def holdout_log_loss(parameters: NDArrays, X: np.ndarray, y: np.ndarray) -> float:
    """The mean log loss of the model on (X, y): the scalar loss Flower's EvaluateRes carries."""
    if not len(y):
        return float("nan")
    p = np.clip(predict_proba(parameters, X), 1e-12, 1 - 1e-12)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log1p(-p))))


def site_evaluation(
    parameters: NDArrays,
    train_xy: tuple[np.ndarray, np.ndarray],
    holdout_xy: tuple[np.ndarray, np.ndarray],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The model gate's metrics of the global model at one site, computed at the site.

    `validation.metrics.model.compute_model_metrics` (Django-free: numpy, scipy, sklearn), so the
    dict has exactly the shape `validation.model_gate.model_gate` reads: members are the site's
    training rows, non-members its locked holdout, and the non-private baseline is a plain
    sklearn LogisticRegression fitted here, in the same evaluation step, on the same site's
    training rows. The baseline never leaves this function; only its holdout AUC (an aggregate)
    does, inside the metrics. No row, no prediction, no parameter of the baseline is returned.
    """
    from sklearn.linear_model import LogisticRegression

    from validation.metrics.model import compute_model_metrics

    X_train, y_train = train_xy
    X_hold, y_hold = holdout_xy
    baseline: np.ndarray | None = None
    if len(np.unique(y_train)) == 2 and len(y_hold):
        model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
        baseline = model.predict_proba(X_hold)[:, 1]
    return compute_model_metrics(
        y_member=y_train,
        p_member=predict_proba(parameters, X_train),
        y_holdout=y_hold,
        p_holdout=predict_proba(parameters, X_hold),
        p_holdout_baseline=baseline,
        seed=seed,
    )
