"""The `dp_sgd_mlp` family: a one-hidden-layer MLP trained with DP-SGD (Opacus), released as a plain
scikit-learn `MLPClassifier` (post-processing: the artifact holds no torch type).

The fit (`DPSGDMLPClassifier.fit`), on features the declarations already scaled into [0, 1]:

* Poisson sampling: at each step every training row joins the batch independently with
  probability `sample_rate` (an option, never derived from the row count); an empty batch still
  takes a step of pure noise, as the sampled Gaussian mechanism's analysis assumes;
* Opacus' `PrivacyEngine` (0.14: `attach` to the optimizer) clips each row's gradient to L2 norm
  `max_grad_norm` (an option) and adds Gaussian noise of standard deviation
  `noise_multiplier * max_grad_norm` to the *summed* clipped gradients; Adam then steps on that
  noisy sum (post-processing; Adam is insensitive to the gradient's scale, so no row count is
  needed to average it);
* `noise_multiplier` is calibrated before any row is read, from (epsilon, delta, sample_rate,
  steps) only, with Opacus' RDP accountant (`opacus.privacy_analysis.compute_rdp` and
  `get_privacy_spent`): the smallest noise on a bisection grid whose accounted epsilon at the
  planned number of steps does not exceed the requested epsilon. Opacus 0.14 has no
  `make_private_with_epsilon`; its `get_noise_multiplier` may return a noise whose epsilon is a
  little above the target, so the bisection here keeps the side that is verified below it;
* after training, the engine's own count of steps is accounted again (`engine.get_privacy_spent`)
  and must not exceed the requested epsilon at the requested delta.

Randomness: the weight initialisation comes from the job's public seed (it is data-independent);
the Poisson sampling and the gradient noise come from `random_state` (in a job, 128 bits from the
OS, generation.modeling.training.mechanism_random_state), never from the public seed. Each draws
from its own generator (torch's process-wide one is never seeded or read, so concurrent jobs in a
worker do not disturb each other's streams), and training runs single-threaded (torch's thread
count is set to 1 for the fit and put back), so with the same `random_state` and seed the fit is
repeatable on one machine.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

CLASSES = (0, 1)
MAX_STEPS = 2000
# RDP orders: Opacus' defaults.
ALPHAS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))


def planned_steps(epochs: int, sample_rate: float) -> int:
    """Steps of DP-SGD: `epochs` passes in expectation at `sample_rate` (independent of the rows)."""
    return max(1, int(math.ceil(epochs / sample_rate)))


def accounted_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon of `steps` sampled Gaussian steps at `delta`, by Opacus' RDP accountant."""
    from opacus import privacy_analysis

    rdp = privacy_analysis.compute_rdp(sample_rate, noise_multiplier, steps, list(ALPHAS))
    epsilon, _ = privacy_analysis.get_privacy_spent(list(ALPHAS), rdp, delta)
    return float(epsilon)


def calibrate_noise(*, epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier whose accounted epsilon after `steps` is at most `epsilon` (to within a
    relative 1e-3 of the smallest such noise); ValueError when no noise up to 1000 reaches it."""
    high = 1.0
    while (
        accounted_epsilon(noise_multiplier=high, sample_rate=sample_rate, steps=steps, delta=delta) > epsilon
    ):
        high *= 2
        if high > 1000:
            raise ValueError(
                f"epsilon {epsilon:g} at delta {delta:g} is too small for {steps} DP-SGD steps at sample "
                f"rate {sample_rate:g}; ask for more epsilon, fewer epochs or a smaller sample_rate."
            )
    low = 0.0
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        if (
            accounted_epsilon(noise_multiplier=middle, sample_rate=sample_rate, steps=steps, delta=delta)
            > epsilon
        ):
            low = middle
        else:
            high = middle
    return high


class StepAccountant:
    """What the fit spent, in the shape training.py reads (`total() -> (epsilon, delta)`)."""

    def __init__(self) -> None:
        self.epsilon = 0.0
        self.delta = 0.0

    def total(self) -> tuple[float, float]:
        return self.epsilon, self.delta


class DPSGDMLPClassifier:
    """One hidden ReLU layer and a logistic output, fitted by DP-SGD with Opacus (module docstring)."""

    def __init__(
        self,
        *,
        epsilon: float,
        delta: float,
        hidden: int,
        epochs: int,
        sample_rate: float,
        max_grad_norm: float,
        learning_rate: float,
        init_seed: int,
        random_state: np.random.RandomState,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.hidden = hidden
        self.epochs = epochs
        self.sample_rate = sample_rate
        self.max_grad_norm = max_grad_norm
        self.learning_rate = learning_rate
        self.init_seed = init_seed
        self.random_state = random_state
        self.steps = planned_steps(epochs, sample_rate)
        if self.steps > MAX_STEPS:
            raise ValueError(
                f"epochs / sample_rate gives {self.steps} DP-SGD steps; at most {MAX_STEPS} are run."
            )
        # Calibrated from the request alone, before any row is read.
        self.noise_multiplier = calibrate_noise(
            epsilon=epsilon, delta=delta, sample_rate=sample_rate, steps=self.steps
        )
        self.accountant = StepAccountant()

    def build_module(self, n_features: int) -> Any:
        """The torch MLP, initialised from the job's public seed with PyTorch's default `Linear`
        init drawn from a private generator (torch's global generator is never touched, so a
        concurrent job in the same process neither moves nor is moved by it)."""
        import torch

        # skip_init: no draw from the global generator for the init that is replaced below.
        hidden = torch.nn.utils.skip_init(torch.nn.Linear, n_features, self.hidden)
        output = torch.nn.utils.skip_init(torch.nn.Linear, self.hidden, 1)
        module = torch.nn.Sequential(hidden, torch.nn.ReLU(), output).double()
        generator = torch.Generator().manual_seed(int(self.init_seed))
        with torch.no_grad():
            for layer in (hidden, output):
                torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.weight.shape[1])
                torch.nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        return module

    def fit(self, x: np.ndarray, y: np.ndarray) -> DPSGDMLPClassifier:
        import torch

        x = np.asarray(x, dtype=float)
        n_rows, n_features = x.shape
        module = self.build_module(n_features)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Opacus' "secure RNG turned off" / sample-rate notes
                spent = self._train(module, torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=float)))
        finally:
            torch.set_num_threads(threads)
        if spent > self.epsilon:
            raise RuntimeError("The DP-SGD fit spent more than the requested epsilon.")
        self.accountant.epsilon, self.accountant.delta = spent, self.delta
        self.module_ = module
        self.n_features_in_ = n_features
        return self

    def _train(self, module: Any, x: Any, y: Any) -> float:
        import torch

        optimizer = torch.optim.Adam(module.parameters(), lr=self.learning_rate)
        engine = _private_seed_engine()(
            module,
            sample_rate=self.sample_rate,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            target_delta=self.delta,
            alphas=list(ALPHAS),
            loss_reduction="sum",
        )
        engine.attach(optimizer)
        # The noise generator: from the mechanism randomness, not the OS seed Opacus drew.
        engine.random_number_generator = torch.Generator().manual_seed(
            int(self.random_state.randint(0, 2**63 - 1, dtype=np.int64))
        )
        # Opacus reads it on an empty step even with a summed loss (where it is unused).
        engine.avg_batch_size = 1.0
        n_rows = x.shape[0]
        for _ in range(self.steps):
            chosen = np.flatnonzero(self.random_state.random_sample(n_rows) < self.sample_rate)
            optimizer.zero_grad()
            if chosen.size:
                index = torch.from_numpy(chosen)
                logits = module(x[index]).squeeze(1)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[index], reduction="sum")
                loss.backward()
                optimizer.step()
            else:
                for parameter in module.parameters():
                    parameter.grad = torch.zeros_like(parameter)
                # Opacus' attach replaced `step` with its dp_step(closure, is_empty): noise only.
                optimizer.step(is_empty=True)  # type: ignore[call-arg]
        if engine.steps != self.steps:
            raise RuntimeError("The DP-SGD fit ran a different number of steps than it was calibrated for.")
        epsilon, _ = engine.get_privacy_spent(self.delta)
        engine.detach()
        return float(epsilon)

    def weights(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(coefs, intercepts) in scikit-learn's MLP layout: coefs[i] is (inputs, outputs)."""
        layers = [self.module_[0], self.module_[2]]
        coefs = [layer.weight.detach().numpy().T.astype(float).copy() for layer in layers]
        intercepts = [layer.bias.detach().numpy().astype(float).copy() for layer in layers]
        return coefs, intercepts

    def torch_proba(self, x: np.ndarray) -> np.ndarray:
        """P(positive class) from the trained torch module (for checking the conversion)."""
        import torch

        with torch.no_grad():
            logits = self.module_(torch.from_numpy(np.asarray(x, dtype=float))).squeeze(1)
            return torch.sigmoid(logits).numpy().astype(float)


def _private_seed_engine() -> Any:
    """Opacus' PrivacyEngine, except that its non-secure seed seeds a generator of its own: the
    stock `_set_seed` calls `torch.manual_seed`, reseeding the process-wide generator under every
    other torch user in the worker."""
    import torch
    from opacus import PrivacyEngine

    class PrivateSeedEngine(PrivacyEngine):
        def _set_seed(self, seed: int) -> Any:
            self.seed = seed
            return torch.Generator().manual_seed(seed)

    return PrivateSeedEngine


def portable_mlp(model: DPSGDMLPClassifier, n_features: int, options: dict[str, Any]) -> Any:
    """A scikit-learn MLPClassifier holding the DP-SGD weights (post-processing)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import LabelBinarizer

    plain = MLPClassifier(hidden_layer_sizes=(options["hidden"],), activation="relu")
    coefs, intercepts = model.weights()
    plain.coefs_ = coefs
    plain.intercepts_ = intercepts
    plain.n_features_in_ = n_features
    plain.n_layers_ = 3
    plain.n_outputs_ = 1
    plain.out_activation_ = "logistic"
    plain.classes_ = np.array(CLASSES)
    # The declared classes, not the rows: what `predict` maps the output back to.
    plain._label_binarizer = LabelBinarizer().fit(np.array(CLASSES))
    plain.n_iter_ = model.epochs
    plain.t_ = model.steps
    return plain
