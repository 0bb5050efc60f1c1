"""How surprising a window's count is for its own key: a test against the key's baseline rate, with a
prior from its peers, so that one threshold means the same for a company with four stories a day and
one with four hundred.

`negative_surprise` (negative items) and `count_surprise` (all items) are -log10 of the upper-tail
probability P(X >= x) of the window's count x: `negative_surprise >= 6` reads "one window in a million
would hold this many negatives for this key". The unit of time is the rule's window: a 15m rule with a
24h baseline has n = 96 baseline windows, aligned and none overlapping the current one (as for
`negative_zscore`), so the window and baseline lengths need no other scaling. Per rule:

- A key's baseline: the counts c_1..c_n of its windows; S = sum(c), m = S/n, v = their variance.
  Windows before the first event seen in any key's baseline of the rule (a fresh install, the first
  day of a replay) were not observed and are left out of n: a day of history that does not exist must
  not read as a day of silence. The newest windows may still receive late events (the windows accept
  them up to the lateness); they are read again until they settle, as for the z-score.
- Peers: the rule's keys (one scope) with any event in their baseline. A key with none has no history.
- Overdispersion phi, one for the scope: a key's count varies from window to window more than a
  Poisson's (the trading day's rhythm; news comes in clumps), var = m + phi m^2. From the peers: the
  median of their (v_k - m_k) / m_k^2 weighted by m_k^2 (floored at 0), so the busy keys, whose
  variance shows the rhythm, count most. Not the pooled sum(v_k - m_k) / sum(m_k^2), which has the
  same weights but lets one peer's burst in the baseline (a hundred items in one window) set phi for
  every key for a day.
- The prior on a key's rate lambda (items per window) is Gamma(alpha, beta), fitted to the peers'
  means by the method of moments less the part of their spread that is sampling noise:
      mu = mean(m_k),  tau2 = var(m_k) - mean(m_k (1 + phi m_k) / n_k),
      alpha = mu^2 / tau2,  beta = mu / tau2,
  tau2 floored so that alpha <= MAX_PRIOR_SHAPE, mu floored at half an item over all the peers'
  windows. With fewer than MIN_PEERS peers the prior is Jeffreys' Gamma(1/2, 0).
- The key's posterior is Gamma(a, b), a = alpha + S/d, b = beta + n/d, d = 1 + phi m: overdispersed
  counts say less about the rate than Poisson ones (the quasi-Poisson discount). A key without
  history keeps the prior: its rate is the peers' typical one, not zero, and so it is not surprising
  for a count that is ordinary among its peers (with an improper prior, b = 0, its surprise is 0).
- The window's count is X ~ Poisson(lambda eps), lambda ~ Gamma(a, b), eps ~ Gamma(1/phi, 1/phi) the
  window's own rhythm (mean 1). Its mean is a/b and the squared coefficient of variation of
  lambda eps is (1 + 1/a)(1 + phi) - 1 =: 1/r; X is taken as negative binomial with that mean and
  size r. With phi = 0 that is exact (the gamma-Poisson posterior predictive), and as a grows it
  tends to Poisson(a/b).
- P(X >= x) = I_q(x, r), the regularized incomplete beta at q = mean / (mean + r), is computed in
  logarithms (its continued fraction), so a surprise of 40 is as exact as one of 4.

Why negative binomial and not Poisson: news counts are overdispersed. A Poisson with a busy company's
daily mean calls every market open surprising, and a Poisson with a rate estimated from a quiet
company's few items (or none) is certain of a rate it cannot know; the gamma on the rate, from the
peers and from the data, turns both uncertainties into the negative binomial's wider tail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_PEERS = 5  # fewer keys with history than this, and the prior is not fitted
MAX_PRIOR_SHAPE = 1_000.0  # the prior is worth at most this many items of a key's own history
_TINY = 1e-300
_EPSILON = 1e-15
_MAX_ITERATIONS = 100_000


@dataclass(frozen=True)
class Counts:
    """A key's counts over its observed baseline windows: how many windows, their sum and squares."""

    windows: int
    total: float
    squares: float
    # Kept, not computed on each read: a prior's fit reads them for every key of a scope.
    mean: float = field(init=False)
    variance: float = field(init=False)

    def __post_init__(self) -> None:
        mean = self.total / self.windows if self.windows else 0.0
        variance = max(0.0, self.squares / self.windows - mean * mean) if self.windows else 0.0
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "variance", variance)


@dataclass(frozen=True)
class Prior:
    """Gamma(shape, rate) on a key's rate per window, and the scope's overdispersion."""

    shape: float
    rate: float
    dispersion: float = 0.0

    @classmethod
    def fit(cls, peers: Sequence[Counts]) -> Prior:
        peers = [p for p in peers if p.windows > 0]
        dispersion = max(
            0.0, _weighted_median([((p.variance - p.mean) / p.mean**2, p.mean**2) for p in peers if p.mean])
        )
        if len(peers) < MIN_PEERS:
            return cls(0.5, 0.0, dispersion)
        mu = max(sum(p.mean for p in peers) / len(peers), 0.5 / sum(p.windows for p in peers))
        spread = sum((p.mean - mu) ** 2 for p in peers) / len(peers)
        noise = sum(p.mean * (1 + dispersion * p.mean) / p.windows for p in peers) / len(peers)
        tau2 = max(spread - noise, mu**2 / MAX_PRIOR_SHAPE)
        return cls(mu**2 / tau2, mu / tau2, dispersion)

    def posterior(self, own: Counts | None) -> tuple[float, float]:
        """(a, b) of the key's rate; the prior itself for a key without history."""
        if own is None or own.windows == 0:
            return self.shape, self.rate
        discount = 1 + self.dispersion * own.mean
        return self.shape + own.total / discount, self.rate + own.windows / discount

    def surprise(self, count: int, own: Counts | None) -> float:
        """-log10 P(X >= count) for the key's next window (0 when the rate is unknown or count is 0)."""
        a, b = self.posterior(own)
        if count <= 0 or b <= 0:
            return 0.0
        size = 1 / ((1 + 1 / a) * (1 + self.dispersion) - 1)
        return max(0.0, -nbinom_log_sf(count, size, a / b) / math.log(10))


def _weighted_median(pairs: list[tuple[float, float]]) -> float:
    """The value at which half the weight lies on either side (0 for none)."""
    pairs = sorted(pairs)
    half, seen = sum(w for _, w in pairs) / 2, 0.0
    for value, weight in pairs:
        seen += weight
        if seen >= half:
            return value
    return 0.0


def nbinom_log_sf(k: int, size: float, mean: float) -> float:
    """log P(X >= k) for a negative binomial with this size (r) and mean: I_q(k, r), q = mean/(mean+r)."""
    if k <= 0:
        return 0.0
    if mean <= 0:
        return -math.inf
    q = mean / (mean + size)
    return log_betainc(float(k), size, q)


def poisson_log_sf(k: int, mean: float) -> float:
    """log P(X >= k) for a Poisson, the limit of the negative binomial as its size grows (a reference)."""
    if k <= 0:
        return 0.0
    # P(X >= k) = P(Gamma(k, 1) <= mean): the lower regularized incomplete gamma, by its series.
    term = total = 1.0 / k
    n = k
    while term > total * _EPSILON:
        n += 1
        term *= mean / n
        total += term
    return math.log(total) + k * math.log(mean) - mean - math.lgamma(k)


def log_betainc(a: float, b: float, x: float) -> float:
    """log I_x(a, b), the regularized incomplete beta, from its continued fraction (Numerical Recipes
    6.4) on whichever side converges, kept in logarithms so that tiny tails do not underflow."""
    if x <= 0:
        return -math.inf
    if x >= 1:
        return 0.0
    log_front = a * math.log(x) + b * math.log1p(-x) - math.lgamma(a) - math.lgamma(b) + math.lgamma(a + b)
    if x < (a + 1) / (a + b + 2):
        return log_front + math.log(_betacf(a, b, x)) - math.log(a)
    complement = math.exp(log_front + math.log(_betacf(b, a, 1 - x)) - math.log(b))
    return math.log1p(-complement) if complement < 1 else -math.inf


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method."""
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1 + aa * d
            d = 1 / (d if abs(d) > _TINY else _TINY)
            c = 1 + aa / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1) < _EPSILON:
            break
    return h
