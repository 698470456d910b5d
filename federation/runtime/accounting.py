"""Privacy accounting for client-level DP in federated studies (the unit is one site).

Each round is one application of the sampled Gaussian mechanism to the sum of the sites' clipped
updates: every site's update is clipped to the clipping norm C, and Flower's DP strategy wrapper
adds Gaussian noise of standard deviation z*C/m to the mean over m = `min_sites` sites (the
smallest number a round may aggregate, so the noise on the sum is at least z*C whichever quorum
took part). Adding or removing one site's entire data changes the sum by at most C, so the guarantee
is per site ("site-level" adjacency), not per patient record.

The sampling rate of a round is the number of sites asked to train divided by the number of sites
in the study when those sites are drawn uniformly at random; the studies here ask every available
site, which is not random sampling, so their rate is 1 (no amplification is claimed). The RDP of the rounds is composed with opacus' `compute_rdp` and converted to
(epsilon, delta) with `get_privacy_spent` (opacus 0.14 has no `opacus.accountants` package; these
are the functions its RDP accountant is built on). Flower's own accountant needs the `dp` extra
(dp-accounting), which cannot be installed beside this stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from opacus.privacy_analysis import compute_rdp, get_privacy_spent

# The same orders opacus' PrivacyEngine uses.
ORDERS: list[float] = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
UNIT = "site"


@dataclass
class SiteLevelAccountant:
    noise_multiplier: float
    delta: float
    history: list[tuple[float, int]] = field(default_factory=list)  # (sample_rate, rounds)

    def step(self, *, sampled_sites: int, total_sites: int, random_sampling: bool = False) -> None:
        """Account one round. Subsampling amplifies privacy only when the round's sites were drawn
        uniformly at random; when every available site is asked (the default here), the rate is 1."""
        rate = min(1.0, sampled_sites / total_sites) if total_sites and random_sampling else 1.0
        if self.history and self.history[-1][0] == rate:
            self.history[-1] = (rate, self.history[-1][1] + 1)
        else:
            self.history.append((rate, 1))

    @property
    def rounds(self) -> int:
        return sum(steps for _, steps in self.history)

    def epsilon(self) -> float:
        """Epsilon at `delta` after the rounds so far; inf without noise, 0 before any round."""
        if not self.history:
            return 0.0
        if self.noise_multiplier <= 0:
            return math.inf
        rdp = sum(compute_rdp(rate, self.noise_multiplier, steps, ORDERS) for rate, steps in self.history)
        eps, _ = get_privacy_spent(ORDERS, rdp, self.delta)
        return float(eps)


def record_level_epsilon(*, noise_multiplier: float, rounds: int, delta: float) -> float:
    """The per-record epsilon the site-level mechanism implies, for the model gate's
    `model_empirical_epsilon` check (a membership attack tests one record, not one site).

    Adding or removing one record at a site changes only that site's update, and both versions are
    clipped to C, so the sum moves by at most 2C: the Gaussian mechanism with sensitivity 2C, i.e.
    the same accountant at noise multiplier z/2 (every round asks every available site: rate 1).
    This is the site-level guarantee stated for *replacing* one site's contribution, and it implies
    a per-record guarantee no weaker; it is larger than the add/remove-one-site epsilon above.
    0 before any round, inf without noise.
    """
    if rounds <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    accountant = SiteLevelAccountant(noise_multiplier=noise_multiplier / 2.0, delta=delta)
    for _ in range(rounds):
        accountant.step(sampled_sites=1, total_sites=1)
    return accountant.epsilon()
