"""anderson_ks: Anderson-Darling and KS per feature, Cauchy-combined (the numeric default)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.registry import build
from detectors.univariate.anderson import AndersonDarlingTest
from detectors.univariate.anderson_ks import AndersonKSTest, cauchy_combination
from detectors.univariate.ks import ASYMPTOTIC_FROM, KSTest, ks_p_values, ks_p_values_by_size


def _cauchy_by_definition(p: float, q: float) -> float:
    t = (math.tan((0.5 - p) * math.pi) + math.tan((0.5 - q) * math.pi)) / 2
    return 0.5 - math.atan(t) / math.pi


@pytest.mark.parametrize(
    ("p", "q"), [(0.01, 0.5), (0.3, 0.7), (0.04, 0.06), (0.9, 0.95), (1e-6, 0.2), (0.5, 0.5)]
)
def test_cauchy_combination_is_the_definition(p: float, q: float) -> None:
    found = cauchy_combination(np.array([p]), np.array([q]))[0]
    assert found == pytest.approx(_cauchy_by_definition(p, q), rel=1e-9, abs=1e-15)


def test_cauchy_combination_keeps_tiny_p_values() -> None:
    """The definition's tan((0.5 - p) pi) has no digits left below p ~ 1e-16; cot(p pi) has."""
    p = np.array([1e-200, 1e-40, 3e-17, 0.0])
    assert cauchy_combination(p, p) == pytest.approx([1e-200, 1e-40, 3e-17, 0.0], rel=1e-9)
    # one tiny p-value beside a large one: about twice the tiny one (the mean halves 1/(pi p))
    assert cauchy_combination(np.array([1e-30]), np.array([0.5]))[0] == pytest.approx(2e-30)
    # one p-value of 0 beside one of 1 is evidence, not NaN
    assert cauchy_combination(np.array([0.0]), np.array([1.0]))[0] < 1e-290


def test_cauchy_combination_is_uniform_for_identical_and_for_independent_p_values() -> None:
    """Exact when both are the same p-value; for independent ones the standard Cauchy tail is
    exact too (a mean of independent standard Cauchy variables is standard Cauchy)."""
    rng = np.random.default_rng(4)
    u, v = rng.uniform(size=(2, 200_000))
    assert np.allclose(cauchy_combination(u, u), u, rtol=1e-9, atol=1e-15)
    combined = cauchy_combination(u, v)
    for level in (0.05, 0.01, 0.001):
        share = float((combined <= level).mean())
        assert abs(share - level) < 4 * math.sqrt(level / len(u)), (level, share)


def _sample(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four features: normal, log-normal, Poisson counts (tie-heavy) and one with NaNs."""
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.lognormal(size=n),
            rng.poisson(2.0, size=n).astype(float),
            rng.normal(size=n),
        ]
    )
    x[rng.uniform(size=n) < 0.1, 3] = np.nan
    return x


@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 120), (ASYMPTOTIC_FROM, ASYMPTOTIC_FROM + 200)])
def test_p_values_combine_anderson_darlings_and_kss(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_ref)
    ref, cur = _sample(rng, n_ref), _sample(rng, n_cur)
    cur[:, 0] += 0.15
    cur[:, 1] *= 1.2
    both = AndersonKSTest(device="cpu").fit(ref).score(cur)
    ad = AndersonDarlingTest(device="cpu").fit(ref).score(cur)
    large = n_ref >= ASYMPTOTIC_FROM and (n_cur >= ASYMPTOTIC_FROM)
    ks = KSTest(device="cpu", mode="asymp" if large else "exact").fit(ref).score(cur)
    continuous = [0, 1]  # the NaN column has fewer than 1,000 values a side when large
    np.testing.assert_allclose(both.extra["p_anderson"], ad.p_value, rtol=1e-12)
    np.testing.assert_allclose(both.extra["p_ks"][continuous], ks.p_value[continuous], rtol=1e-9)
    np.testing.assert_allclose(both.extra["ks_statistic"][continuous], ks.statistic[continuous])
    expected = cauchy_combination(ad.p_value[continuous], ks.p_value[continuous])
    np.testing.assert_allclose(both.p_value[continuous], expected, rtol=1e-9)
    np.testing.assert_allclose(both.statistic[continuous], ad.statistic[continuous])
    # the NaN column: its own sizes, its own KS p-value (exact below 1,000 values a side)
    n3 = int(both.n_reference[3]), int(both.n_current[3])
    p3 = ks_p_values_by_size(both.extra["ks_statistic"][3:4], np.array([n3[0]]), np.array([n3[1]]))
    assert both.p_value[3] == pytest.approx(cauchy_combination(ad.p_value[3:4], p3)[0])
    # the tie-heavy column is KS's alone, exact with ties, as Anderson-Darling's ties="ks"
    assert both.extra["ks_on_ties"].tolist() == [0, 0, 1, 0]
    assert both.p_value[2] == ad.p_value[2] and math.isnan(both.extra["p_ks"][2])


def test_ks_p_values_by_size_switch_at_the_documented_size() -> None:
    """Asymptotic where both sides have ASYMPTOTIC_FROM values, exact otherwise (each of
    ks_p_values' modes is compared with scipy in test_ks.py)."""
    d = np.array([0.05, 0.05, 0.08])
    n_ref = np.array([ASYMPTOTIC_FROM, ASYMPTOTIC_FROM - 1, 400])
    n_cur = np.array([ASYMPTOTIC_FROM, ASYMPTOTIC_FROM, 150])
    found = ks_p_values_by_size(d, n_ref, n_cur)
    asymp = ks_p_values(d, n_ref, n_cur, "asymp")
    exact = ks_p_values(d, n_ref, n_cur, "exact")
    assert found.tolist() == [asymp[0], exact[1], exact[2]]
    assert exact[0] != asymp[0]  # the switch changes something


def test_it_catches_most_of_what_each_test_alone_catches() -> None:
    """Values just below the median moved just above it (the tails unchanged: KS's case) and
    a few values moved to an extreme (AD's case): the combination recovers most of the gap
    between the two tests in both."""
    rng = np.random.default_rng(11)
    flagged = {"middle": [0, 0, 0], "tail": [0, 0, 0]}
    for _ in range(80):
        ref = rng.normal(size=(600, 1))
        middle, tail = rng.normal(size=(200, 1)), rng.normal(size=(200, 1))
        middle[(middle > -0.25) & (middle < 0)] += 0.25
        tail[:12, 0] = rng.normal(4.0, 0.3, size=12)
        for name, cur in (("middle", middle), ("tail", tail)):
            ps = []
            for test in (AndersonKSTest, AndersonDarlingTest, KSTest):
                ps.append(float(test(device="cpu").fit(ref).score(cur).p_value[0]))
            if max(ps[1:]) <= 0.5:  # then cot(p pi) >= 0 for both: at most twice the smaller
                assert ps[0] <= 2.0 * min(ps[1:]) * (1 + 1e-9)
            for k, p in enumerate(ps):
                flagged[name][k] += p <= 0.05
    combined, anderson, ks = flagged["middle"]
    assert ks > anderson and combined > anderson + (ks - anderson) / 2, flagged
    combined, anderson, ks = flagged["tail"]
    assert anderson > ks and combined > ks + (anderson - ks) / 2, flagged


def test_the_registry_builds_it_with_the_anderson_darling_parameters() -> None:
    test = build("anderson_ks", {"ties": "permutation"}, device="cpu", alpha=0.01, family_size=40)
    assert isinstance(test, AndersonKSTest) and test.ties == "permutation"
    assert test.permutations() == 7999
    rng = np.random.default_rng(5)
    ref, cur = (rng.poisson(2.0, size=(n, 2)).astype(float) for n in (200, 100))
    result = test.fit(ref).score(cur)
    # permuted (tie-heavy) features keep their permutation p-value alone
    assert result.extra["n_permutations"].tolist() == [7999, 7999]
    assert np.isnan(result.extra["p_ks"]).all()
    with pytest.raises(ValueError, match="ties"):
        build("anderson_ks", {"ties": "maybe"}, device="cpu")


def test_too_few_values_are_not_tested() -> None:
    ref = np.column_stack([np.arange(50.0), np.r_[1.0, np.full(49, np.nan)]])
    cur = np.column_stack([np.arange(30.0) + 0.5, np.arange(30.0)])
    result = AndersonKSTest(device="cpu").fit(ref).score(cur)
    assert np.isfinite(result.p_value[0]) and np.isnan(result.p_value[1])
    assert not result.drift[1]


def test_a_window_of_another_width_is_refused() -> None:
    test = AndersonKSTest(device="cpu").fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(ValueError, match=r"shape \(rows, 3\)"):
        test.score(np.zeros((10, 2)))
