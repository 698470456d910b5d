"""The DP model families a `dp_model` request may name, and how each is built.

Each family is one DP fit (a diffprivlib estimator; for logistic regression, objective perturbation
with diffprivlib's Vector mechanism), the scikit-learn estimator of the same family
trained as the non-private baseline, and a conversion of the fitted DP estimator into a plain
scikit-learn estimator (post-processing: the released artifact then needs scikit-learn only, not
diffprivlib, and its skops dump holds no diffprivlib type or budget accountant).

Every privacy parameter comes from the encoding (generation.modeling.encoding), which is built from
the steward's declarations only: all encoded features lie in [0, 1], so

* logistic regression gets ``data_norm = sqrt(n_encoded_features)`` (the largest L2 norm a row can
  have), widened to ``sqrt(data_norm**2 + 1)`` for the intercept; it is objective perturbation with
  diffprivlib's Vector mechanism (`ObjectivePerturbationLogisticRegression` says why not
  diffprivlib's LogisticRegression class under these pins);
* the random forest and the decision tree get ``bounds = (zeros, ones)`` and ``classes = [0, 1]``;
* the DP-SGD MLP (generation.modeling.dpsgd, Opacus) bounds each record's influence by clipping its
  gradient to ``max_grad_norm`` (an option), so it needs no data-derived parameter at all; it is
  (epsilon, delta)-DP and takes the request's delta.

Options (`ModelSpec.options`) are typed, capped and strict about unknown keys, like a synthesizer's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from generation.synthesizers.options import checked_options, float_option, int_option

CLASSES = (0, 1)


@dataclass(frozen=True)
class ModelFamily:
    """A model family: its label, the options it takes, and how it is built and released."""

    name: str
    label: str
    dp_class: str  # the diffprivlib estimator, for the privacy facts
    mechanism: str  # what the DP fit does, in words
    options: tuple[str, ...]
    parse_options: Callable[[Mapping[str, Any]], dict[str, Any]]
    privacy_parameters: Callable[[int], dict[str, Any]]
    build_dp: Callable[..., Any]  # (epsilon, n_features, options, random_state) -> diffprivlib estimator
    build_baseline: Callable[..., Any]  # (options, seed) -> unfitted scikit-learn estimator
    portable: Callable[[Any, int, dict[str, Any]], Any]  # fitted DP estimator -> plain sklearn one
    library: str = "diffprivlib"  # the library whose mechanism the fit runs, for the privacy facts
    # (epsilon, delta)-DP families take the request's delta (and the job's seed for their
    # data-independent initialisation) in build_dp; the others are pure epsilon-DP.
    uses_delta: bool = False
    flavour: str = "pure epsilon-DP"
    sensitivity: str = ""  # in words, for the privacy facts; "" means derived from the parameters


# --- options -----------------------------------------------------------------------------------


def _logistic_options(given: Mapping[str, Any]) -> dict[str, Any]:
    options = checked_options("dp_logistic_regression", given, allowed=("C", "max_iter"))
    return {
        "C": float_option(options, "C", default=1.0, low=1e-4, high=1e4),
        "max_iter": int_option(options, "max_iter", default=500, low=10, high=2000),
    }


def _forest_options(given: Mapping[str, Any]) -> dict[str, Any]:
    options = checked_options("dp_random_forest", given, allowed=("n_estimators", "max_depth"))
    return {
        "n_estimators": int_option(options, "n_estimators", default=10, low=1, high=100),
        "max_depth": int_option(options, "max_depth", default=5, low=1, high=12),
    }


def _tree_options(given: Mapping[str, Any]) -> dict[str, Any]:
    options = checked_options("dp_decision_tree", given, allowed=("max_depth",))
    return {"max_depth": int_option(options, "max_depth", default=5, low=1, high=12)}


def _mlp_options(given: Mapping[str, Any]) -> dict[str, Any]:
    options = checked_options(
        "dp_sgd_mlp",
        given,
        allowed=("hidden", "epochs", "sample_rate", "max_grad_norm", "learning_rate"),
    )
    parsed = {
        "hidden": int_option(options, "hidden", default=16, low=2, high=64),
        "epochs": int_option(options, "epochs", default=5, low=1, high=20),
        "sample_rate": float_option(options, "sample_rate", default=0.02, low=0.005, high=0.5),
        "max_grad_norm": float_option(options, "max_grad_norm", default=1.0, low=0.01, high=10.0),
        "learning_rate": float_option(options, "learning_rate", default=0.01, low=1e-4, high=0.5),
    }
    from generation.modeling.dpsgd import MAX_STEPS, planned_steps

    steps = planned_steps(int(parsed["epochs"]), float(parsed["sample_rate"]))
    if steps > MAX_STEPS:
        raise ValueError(
            f"Options epochs / sample_rate give {steps} DP-SGD steps; at most {MAX_STEPS} are run "
            "(fewer epochs or a larger sample_rate)."
        )
    return parsed


# --- privacy parameters, from the number of encoded features only --------------------------------

_FROM_DECLARATIONS = "steward declaration"


def logistic_data_norm(n_features: int) -> float:
    """The largest L2 norm of an encoded row: every encoded feature is in [0, 1]."""
    return math.sqrt(n_features)


def _logistic_parameters(n_features: int) -> dict[str, Any]:
    return {
        "data_norm": {
            "value": logistic_data_norm(n_features),
            "source": _FROM_DECLARATIONS,
            "why": (
                f"sqrt({n_features}): each of the {n_features} encoded features is scaled into [0, 1] "
                "with the declared bounds and categories, so no row's L2 norm can exceed it; "
                "the intercept adds 1 under the root, and rows are divided by sqrt(data_norm^2 + 1) "
                "so each has norm at most 1"
            ),
        },
        "classes": {"value": list(CLASSES), "source": _FROM_DECLARATIONS},
    }


def _tree_parameters(n_features: int) -> dict[str, Any]:
    return {
        "bounds": {
            "lower": [0.0] * n_features,
            "upper": [1.0] * n_features,
            "source": _FROM_DECLARATIONS,
            "why": "every encoded feature is scaled into [0, 1] with the declared bounds and categories",
        },
        "classes": {"value": list(CLASSES), "source": _FROM_DECLARATIONS},
    }


def _mlp_parameters(n_features: int) -> dict[str, Any]:
    return {
        "bounds": {
            "lower": [0.0] * n_features,
            "upper": [1.0] * n_features,
            "source": _FROM_DECLARATIONS,
            "why": "every encoded feature is scaled into [0, 1] with the declared bounds and categories",
        },
        "max_grad_norm": {
            "source": "request option (default 1.0), never the data",
            "why": (
                "each row's gradient is clipped to this L2 norm, which bounds one record's "
                "contribution to every noisy step whatever the data holds"
            ),
        },
        "classes": {"value": list(CLASSES), "source": _FROM_DECLARATIONS},
    }


# --- the DP estimators -------------------------------------------------------------------------


def _accountant() -> Any:
    # One accountant per fit, so a process-wide default never mixes two jobs' spends.
    from diffprivlib.accountant import BudgetAccountant

    return BudgetAccountant()


class ObjectivePerturbationLogisticRegression:
    """Binary logistic regression by objective perturbation (Chaudhuri, Monteleoni and Sarwate 2011,
    Algorithm 2), with diffprivlib's `Vector` mechanism drawing the noise and its penalty.

    Why not `diffprivlib.models.LogisticRegression` itself: with scikit-learn >= 1.4 (the pins need
    1.5) its loss is scikit-learn's *mean* log-loss while diffprivlib 0.6.5 calibrates the noise
    term for the *summed* loss, so the noise is n times too large: still private, but the model is
    noise at any epsilon (IBM/differential-privacy-library issue #97, fixed in PR #98 for 0.6.6,
    which needs numpy >= 2 and so cannot be installed here). This is the summed formulation that
    `Vector` is calibrated for (diffprivlib's own path before scikit-learn 1.4):

        J(w) = sum_i log(1 + exp(-s_i w.z_i)) + (alpha / 2) |w|^2 + b.w + (Delta / 2) |w|^2

    with s_i = +-1, alpha = 1 / C, z_i = [x_i, 1] / sqrt(data_norm^2 + 1) so |z_i| <= 1 (the
    intercept is the last coordinate), and b, Delta drawn by `Vector(epsilon, function_sensitivity
    = 1/4, data_sensitivity = 1, alpha)`. Vector's epsilon' = epsilon - 2 log(1 + 2c / alpha) and
    Delta = c / (e^(epsilon/4) - 1) - alpha / 2 are each at least as conservative as the paper's
    (epsilon - 2 log(1 + c / alpha), and - alpha); |b| ~ Gamma(d, 2 / epsilon') in a uniform
    direction, as the paper draws it. data_norm is given (from the declarations), never measured.
    """

    def __init__(
        self, *, epsilon: float, data_norm: float, C: float, max_iter: int, random_state: Any, accountant: Any
    ) -> None:
        self.epsilon = epsilon
        self.data_norm = data_norm
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self.accountant = accountant

    @staticmethod
    def _summed_loss(w: np.ndarray, z: np.ndarray, s: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
        from scipy.special import expit

        margin = s * (z @ w)
        loss = float(np.logaddexp(0.0, -margin).sum() + 0.5 * alpha * (w @ w))
        grad = z.T @ (-s * expit(-margin)) + alpha * w
        return loss, grad

    def fit(self, x: np.ndarray, y: np.ndarray) -> ObjectivePerturbationLogisticRegression:
        from diffprivlib.mechanisms import Vector
        from scipy.optimize import fmin_l_bfgs_b

        x = np.asarray(x, dtype=float)
        n_rows, n_features = x.shape
        self.accountant.check(self.epsilon, 0)
        scale = math.sqrt(self.data_norm**2 + 1.0)
        z = np.hstack([x, np.ones((n_rows, 1))]) / scale
        # The declared data_norm bounds every row already; clipping keeps |z| <= 1 even for a
        # caller that passes rows outside [0, 1] (never the case after the encoder).
        norms = np.linalg.norm(z, axis=1)
        z = z / np.maximum(norms, 1.0)[:, None]
        s = np.where(np.asarray(y) == CLASSES[1], 1.0, -1.0)
        alpha = 1.0 / self.C
        mechanism = Vector(
            epsilon=self.epsilon,
            function_sensitivity=0.25,
            data_sensitivity=1.0,
            dimension=n_features + 1,
            alpha=alpha,
            random_state=self.random_state,
        )
        noisy = mechanism.randomise(self._summed_loss)
        w, _, info = fmin_l_bfgs_b(noisy, np.zeros(n_features + 1), args=(z, s, alpha), maxiter=self.max_iter)
        self.accountant.spend(self.epsilon, 0)
        self.coef_ = (w[:n_features] / scale).reshape(1, n_features)
        self.intercept_ = np.array([w[n_features] / scale])
        self.n_iter_ = np.array([int(info["nit"])], dtype=np.int32)
        self.classes_ = np.array(CLASSES)
        return self


def _dp_logistic(*, epsilon: float, n_features: int, options: dict[str, Any], random_state: Any) -> Any:
    return ObjectivePerturbationLogisticRegression(
        epsilon=epsilon,
        data_norm=logistic_data_norm(n_features),
        C=options["C"],
        max_iter=options["max_iter"],
        random_state=random_state,
        accountant=_accountant(),
    )


def _dp_forest(*, epsilon: float, n_features: int, options: dict[str, Any], random_state: Any) -> Any:
    from diffprivlib.models import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=options["n_estimators"],
        max_depth=options["max_depth"],
        epsilon=epsilon,
        bounds=(np.zeros(n_features), np.ones(n_features)),
        classes=list(CLASSES),
        # Trees get disjoint random shares of the rows (parallel composition), not the file order.
        shuffle=True,
        random_state=random_state,
        accountant=_accountant(),
    )


def _dp_tree(*, epsilon: float, n_features: int, options: dict[str, Any], random_state: Any) -> Any:
    from diffprivlib.models import DecisionTreeClassifier

    return DecisionTreeClassifier(
        max_depth=options["max_depth"],
        epsilon=epsilon,
        bounds=(np.zeros(n_features), np.ones(n_features)),
        classes=list(CLASSES),
        random_state=random_state,
        accountant=_accountant(),
    )


def _dp_mlp(
    *,
    epsilon: float,
    delta: float,
    seed: int,
    n_features: int,
    options: dict[str, Any],
    random_state: Any,
) -> Any:
    from generation.modeling.dpsgd import DPSGDMLPClassifier

    return DPSGDMLPClassifier(
        epsilon=epsilon,
        delta=delta,
        hidden=options["hidden"],
        epochs=options["epochs"],
        sample_rate=options["sample_rate"],
        max_grad_norm=options["max_grad_norm"],
        learning_rate=options["learning_rate"],
        init_seed=seed,
        random_state=random_state,
    )


# --- the non-private baselines (same family, same job; never stored, never released) -------------


def _baseline_logistic(*, options: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=options["C"], max_iter=max(options["max_iter"], 1000), random_state=seed)


def _baseline_forest(*, options: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=options["n_estimators"], max_depth=options["max_depth"], random_state=seed
    )


def _baseline_tree(*, options: dict[str, Any], seed: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=options["max_depth"], random_state=seed)


def _baseline_mlp(*, options: dict[str, Any], seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    # The same architecture without DP: full-batch-free Adam for a bounded number of epochs.
    return MLPClassifier(
        hidden_layer_sizes=(options["hidden"],),
        activation="relu",
        learning_rate_init=min(options["learning_rate"], 0.01),
        max_iter=50,
        random_state=seed,
    )


# --- post-processing into plain scikit-learn estimators ----------------------------------------


def _portable_logistic(model: Any, n_features: int, options: dict[str, Any]) -> Any:
    """A scikit-learn LogisticRegression with the DP coefficients copied in."""
    from sklearn.linear_model import LogisticRegression

    plain = LogisticRegression(C=options["C"], max_iter=options["max_iter"])
    plain.classes_ = np.array(CLASSES)
    plain.coef_ = np.asarray(model.coef_, dtype=float).reshape(1, n_features).copy()
    plain.intercept_ = np.asarray(model.intercept_, dtype=float).reshape(1).copy()
    plain.n_features_in_ = n_features
    plain.n_iter_ = np.asarray(model.n_iter_, dtype=np.int32).copy()
    return plain


def _plain_tree(model: Any, n_features: int, max_depth: int) -> Any:
    """A scikit-learn DecisionTreeClassifier holding the DP tree's `tree_` (an sklearn Tree)."""
    from sklearn.tree import DecisionTreeClassifier

    plain = DecisionTreeClassifier(max_depth=max_depth)
    plain.tree_ = model.tree_
    plain.classes_ = np.array(CLASSES)
    plain.n_classes_ = len(CLASSES)
    plain.n_outputs_ = 1
    plain.n_features_in_ = n_features
    plain.max_features_ = n_features
    return plain


def _portable_tree(model: Any, n_features: int, options: dict[str, Any]) -> Any:
    return _plain_tree(model, n_features, options["max_depth"])


def _portable_forest(model: Any, n_features: int, options: dict[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    plain = RandomForestClassifier(
        n_estimators=len(model.estimators_), max_depth=options["max_depth"], bootstrap=False
    )
    plain.estimators_ = [_plain_tree(tree, n_features, options["max_depth"]) for tree in model.estimators_]
    plain.estimator_ = plain.estimators_[0]
    plain.classes_ = np.array(CLASSES)
    plain.n_classes_ = len(CLASSES)
    plain.n_outputs_ = 1
    plain.n_features_in_ = n_features
    return plain


def _portable_mlp(model: Any, n_features: int, options: dict[str, Any]) -> Any:
    from generation.modeling.dpsgd import portable_mlp

    return portable_mlp(model, n_features, options)


MODEL_FAMILIES: dict[str, ModelFamily] = {
    "dp_logistic_regression": ModelFamily(
        name="dp_logistic_regression",
        label="DP logistic regression (diffprivlib)",
        dp_class="diffprivlib.mechanisms.Vector",
        mechanism=(
            "objective perturbation of the summed log-loss (Chaudhuri et al. 2011, Algorithm 2); "
            "noise and penalty drawn by diffprivlib's Vector mechanism"
        ),
        options=("C", "max_iter"),
        parse_options=_logistic_options,
        privacy_parameters=_logistic_parameters,
        build_dp=_dp_logistic,
        build_baseline=_baseline_logistic,
        portable=_portable_logistic,
    ),
    "dp_random_forest": ModelFamily(
        name="dp_random_forest",
        label="DP random forest (diffprivlib)",
        dp_class="diffprivlib.models.RandomForestClassifier",
        mechanism=(
            "random trees built from the declared bounds only; each tree's leaves labelled by the "
            "permute-and-flip mechanism on a disjoint share of the rows (Fletcher and Islam 2017)"
        ),
        options=("n_estimators", "max_depth"),
        parse_options=_forest_options,
        privacy_parameters=_tree_parameters,
        build_dp=_dp_forest,
        build_baseline=_baseline_forest,
        portable=_portable_forest,
    ),
    "dp_decision_tree": ModelFamily(
        name="dp_decision_tree",
        label="DP decision tree (diffprivlib)",
        dp_class="diffprivlib.models.DecisionTreeClassifier",
        mechanism=(
            "a random tree built from the declared bounds only; leaves labelled by the "
            "permute-and-flip mechanism"
        ),
        options=("max_depth",),
        parse_options=_tree_options,
        privacy_parameters=_tree_parameters,
        build_dp=_dp_tree,
        build_baseline=_baseline_tree,
        portable=_portable_tree,
    ),
    "dp_sgd_mlp": ModelFamily(
        name="dp_sgd_mlp",
        label="DP-SGD neural network, one hidden layer (Opacus)",
        dp_class="opacus.PrivacyEngine",
        mechanism=(
            "DP-SGD: Poisson-sampled batches, each row's gradient clipped to max_grad_norm, "
            "Gaussian noise on the summed gradients; noise calibrated and spent by Opacus' "
            "RDP accountant"
        ),
        options=("hidden", "epochs", "sample_rate", "max_grad_norm", "learning_rate"),
        parse_options=_mlp_options,
        privacy_parameters=_mlp_parameters,
        build_dp=_dp_mlp,
        build_baseline=_baseline_mlp,
        portable=_portable_mlp,
        library="opacus",
        uses_delta=True,
        flavour="(epsilon, delta)-DP, record-level, via DP-SGD (Opacus RDP accountant)",
        sensitivity="max_grad_norm (each row's gradient clipped to this L2 norm)",
    ),
}


def is_model_family(name: str) -> bool:
    return isinstance(name, str) and name in MODEL_FAMILIES


def model_family_label(name: str) -> str:
    """The family's label, or the name itself when it is not a model family."""
    family = MODEL_FAMILIES.get(name) if isinstance(name, str) else None
    return family.label if family else str(name)
