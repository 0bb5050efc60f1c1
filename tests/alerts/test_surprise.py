"""Surprise per key: the negative binomial tail against direct sums, the Poisson limit, and the peer prior
that makes a quiet company's 8 negatives surprising, a busy one's not, and a new company's not at once."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.surprise import MIN_PEERS, Counts, Prior, log_betainc, nbinom_log_sf, poisson_log_sf

WINDOWS = 96  # a day of 15-minute windows


def direct_log_sf(k: int, size: float, mean: float) -> float:
    """log of sum_{j >= k} pmf(j), term by term (each from the one before) until the rest is nothing."""
    p = size / (size + mean)
    log_first = (
        math.lgamma(k + size)
        - math.lgamma(size)
        - math.lgamma(k + 1)
        + size * math.log(p)
        + k * math.log1p(-p)
    )
    terms, term, total, j = [1.0], 1.0, 1.0, k
    while term > 1e-18 * total or (j + size) * (1 - p) > j + 1:  # not negligible yet, or still rising
        term *= (j + size) / (j + 1) * (1 - p)
        terms.append(term)
        total += term
        j += 1
    return log_first + math.log(math.fsum(terms))


def counts(values: list[int]) -> Counts:
    return Counts(len(values), sum(values), sum(v * v for v in values))


def quiet(negatives_a_day: int) -> Counts:
    """A company with a few negatives a day, one to a window."""
    return counts([1] * negatives_a_day + [0] * (WINDOWS - negatives_a_day))


def busy(level: int) -> Counts:
    """A company with `level` negatives in a window on average, varying by the hour."""
    return counts([level + (i % 7) - 3 for i in range(WINDOWS)])


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(0, 80),
    size=st.floats(0.1, 500),
    mean=st.floats(1e-3, 50),
)
def test_negative_binomial_tail_matches_a_direct_sum(k: int, size: float, mean: float) -> None:
    ours = nbinom_log_sf(k, size, mean)
    if k == 0:
        assert ours == 0.0
        return
    expected = direct_log_sf(k, size, mean)
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-11)


@pytest.mark.parametrize(
    ("k", "size", "mean"),
    [(8, 0.7, 0.05), (8, 0.7, 6.0), (40, 3.0, 0.01), (3, 1e4, 2.5), (300, 0.2, 150.0), (1, 50.0, 1e-4)],
)
def test_negative_binomial_tail_matches_scipy(k: int, size: float, mean: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    expected = stats.nbinom.logsf(k - 1, size, size / (size + mean))
    assert nbinom_log_sf(k, size, mean) == pytest.approx(expected, rel=1e-9)


def test_the_tail_keeps_its_digits_far_below_a_double() -> None:
    # 200 negatives where 0.01 are expected: about 1e-600, which a double underflows to 0.
    log_sf = nbinom_log_sf(200, 5.0, 0.01)
    assert math.isfinite(log_sf)
    assert log_sf == pytest.approx(direct_log_sf(200, 5.0, 0.01), rel=1e-9)
    assert -log_sf / math.log(10) > 400


def test_incomplete_beta_on_both_sides_of_its_switch() -> None:
    # I_x(1, b) = 1 - (1 - x)^b exactly, on either side of x = 2 / (b + 3).
    for b in (0.5, 3.0, 40.0):
        for x in (1e-6, 0.01, 0.3, 0.9, 0.999):
            assert log_betainc(1.0, b, x) == pytest.approx(
                math.log(-math.expm1(b * math.log1p(-x))), rel=1e-10
            )


@pytest.mark.parametrize("rate", [0.01, 0.3, 2.0, 12.0])
@pytest.mark.parametrize("count", [1, 4, 8, 25])
def test_poisson_limit_when_the_prior_is_very_strong(rate: float, count: int) -> None:
    """A prior worth 10^7 windows at `rate`, no overdispersion: the window's count is Poisson(rate)."""
    prior = Prior(shape=rate * 1e7, rate=1e7, dispersion=0.0)
    poisson = -poisson_log_sf(count, rate) / math.log(10)
    assert prior.surprise(count, None) == pytest.approx(poisson, rel=1e-4, abs=1e-6)
    # and the Poisson tail itself, against a direct sum
    direct = math.fsum(math.exp(j * math.log(rate) - rate - math.lgamma(j + 1)) for j in range(count, 400))
    assert poisson_log_sf(count, rate) == pytest.approx(math.log(direct), rel=1e-9)


def test_poisson_limit_of_a_key_with_a_long_history() -> None:
    """A weak prior and 10,000 windows of the key's own at 0.5 a window: close to Poisson(0.5)."""
    prior = Prior(shape=0.5, rate=1.0)
    own = Counts(10_000, 5_000, 7_500)  # mean 0.5, variance 0.5
    poisson = -poisson_log_sf(6, 0.5) / math.log(10)
    assert prior.surprise(6, own) == pytest.approx(poisson, rel=0.01)


def population() -> list[Counts]:
    """Watchlist companies: most see a few negative stories a day, a few see several every window."""
    return [quiet(2 + i % 5) for i in range(40)] + [busy(6 + i) for i in range(6)]


def test_a_quiet_company_with_8_negatives_is_very_surprising_a_busy_one_is_not() -> None:
    prior = Prior.fit(population())
    assert prior.surprise(8, quiet(4)) >= 6, "one in a million or rarer for a company with 4 a day"
    assert prior.surprise(8, busy(6)) < 1.5, "a busy company sees 8 negatives in many windows"
    assert prior.surprise(30, busy(6)) >= 6, "but not 30"


def test_a_key_without_history_takes_the_peer_prior() -> None:
    mixed = Prior.fit(population())
    # The peers' rates run from a few a day to ten a window: a new name with 8 is not surprising ...
    assert 0 < mixed.surprise(8, None) < 3
    assert mixed.surprise(8, None) < mixed.surprise(8, quiet(4))
    # ... but where every peer is quiet, a new name's 8 negatives are as surprising as a quiet one's.
    quiet_world = Prior.fit([quiet(2 + i % 5) for i in range(40)])
    assert quiet_world.surprise(8, None) >= 6
    # Its rate is shrunk towards the peers' typical rate, which is not zero: one negative is ordinary.
    assert quiet_world.surprise(1, None) < 1.5


def test_a_key_with_history_but_no_negatives_is_shrunk_to_its_peers() -> None:
    prior = Prior.fit(population())
    silent = Counts(WINDOWS, 0, 0)  # news every day, none of it negative
    assert prior.surprise(8, silent) > prior.surprise(8, quiet(4)) > prior.surprise(8, None)
    assert math.isfinite(prior.surprise(8, silent))


def test_too_few_peers_give_a_vague_prior_and_no_surprise_without_history() -> None:
    prior = Prior.fit([quiet(4)] * (MIN_PEERS - 1))
    assert (prior.shape, prior.rate) == (0.5, 0.0)
    assert prior.surprise(50, None) == 0.0, "nothing is known about the key: no basis for surprise"
    assert prior.surprise(8, quiet(4)) >= 6, "its own day of history is enough for 8 negatives"


def test_overdispersion_from_the_peers_widens_the_tail() -> None:
    # Busy peers whose windows vary far more than a Poisson's (quiet nights, loud opens).
    rhythm = [counts([0, 0, 1, 2, 4, 10, 14, 9] * 12) for _ in range(10)]
    overdispersed = Prior.fit(rhythm)
    mean, variance = rhythm[0].mean, rhythm[0].variance
    assert overdispersed.dispersion == pytest.approx((variance - mean) / mean**2)
    poisson_like = Prior(overdispersed.shape, overdispersed.rate, 0.0)
    assert overdispersed.surprise(20, rhythm[0]) < poisson_like.surprise(20, rhythm[0]) - 2


def test_one_peer_s_burst_does_not_set_the_dispersion_for_all() -> None:
    rhythm = [counts([0, 0, 1, 2, 4, 10, 14, 9] * 12) for _ in range(10)]
    quiet_peers = [quiet(4) for _ in range(30)]
    burst = counts([120] + [0, 0, 1, 2, 4, 10, 14, 9] * 11 + [0] * 7)  # yesterday's incident
    calm, stormy = Prior.fit(rhythm + quiet_peers), Prior.fit([*rhythm, *quiet_peers, burst])
    assert stormy.dispersion == pytest.approx(calm.dispersion)
    assert stormy.surprise(8, quiet(4)) == pytest.approx(calm.surprise(8, quiet(4)), rel=0.1)


def test_no_count_is_not_surprising() -> None:
    prior = Prior.fit(population())
    assert prior.surprise(0, quiet(4)) == 0.0
    assert prior.surprise(0, None) == 0.0


@given(own=st.lists(st.integers(0, 30), min_size=2, max_size=96), count=st.integers(0, 60))
def test_more_is_never_less_surprising(own: list[int], count: int) -> None:
    prior = Prior.fit(population())
    assert 0 <= prior.surprise(count, counts(own)) <= prior.surprise(count + 1, counts(own))
