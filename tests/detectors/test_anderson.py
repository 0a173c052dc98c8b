"""Anderson-Darling: the limit's tail without scipy's cap, the placed CPU statistic, ties.

The tail is checked against what the limit is, not against itself: its mean and variance
(``sum lambda_j`` and ``2 sum lambda_j^2`` of the eigenvalues ``1 / (j (j + 1))``), Monte Carlo
of the weighted chi-squares, and the conditional tail ``E[erfc(sqrt(x - R))]`` (``R``: all but
the largest term) far below where plain Monte Carlo reaches.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import special, stats

from detectors.univariate import anderson_limit
from detectors.univariate.anderson import AndersonDarlingTest, a2akn, placed_a2akn
from detectors.univariate.columns import sort_columns
from detectors.univariate.ks import KSTest
from detectors.univariate.ks_statistic import ref_counts_at_or_below

CPU = torch.device("cpu")


def test_the_tail_has_the_limits_mean_and_variance() -> None:
    # E[A] = integral of sf, E[A^2] = integral of 2 x sf (the grid and the tail beyond)
    x = np.linspace(1e-4, 60.0, 600_001)
    sf = anderson_limit.limit_sf(x)
    mean = np.trapezoid(sf, x)
    second = np.trapezoid(2 * x * sf, x)
    assert mean == pytest.approx(1.0, abs=2e-4)
    assert second - mean**2 == pytest.approx(anderson_limit.VARIANCE, rel=1e-3)


def test_the_tail_matches_monte_carlo_of_the_weighted_chi_squares() -> None:
    rng = np.random.default_rng(3)
    weights = anderson_limit.eigenvalues()[:100]
    draws = (rng.standard_normal((400_000, 100)) ** 2) @ weights + 1 / 101
    for x in (0.5, 1.0, 2.0, 3.0, 4.0, 5.0):
        observed = float((draws > x).mean())
        error = math.sqrt(observed * (1 - observed) / len(draws))
        assert anderson_limit.limit_sf(np.array([x]))[0] == pytest.approx(observed, abs=4 * error)


@pytest.mark.parametrize(("x", "tolerance"), [(12.0, 0.003), (19.0, 0.003), (30.0, 0.02)])
def test_the_far_tail_matches_the_conditional_tail(x: float, tolerance: float) -> None:
    # P(A > x) = E[P(Z^2 / 2 > x - R)] with R the sum of all but the largest term: Monte Carlo
    # of a smooth function of R, accurate to 0.1% where P is 1e-14
    rng = np.random.default_rng(4)
    weights = anderson_limit.eigenvalues()[1:100]
    rest = (rng.standard_normal((300_000, 99)) ** 2) @ weights + 1 / 101
    expected = float(special.erfc(np.sqrt(np.maximum(x - rest, 0.0))).mean())
    assert anderson_limit.limit_sf(np.array([x]))[0] == pytest.approx(expected, rel=tolerance)


def test_the_tail_is_monotone_and_has_no_floor() -> None:
    x = np.linspace(0.01, 200.0, 20_000)
    sf = anderson_limit.limit_sf(x)
    assert (np.diff(sf) <= 0).all()
    assert sf[0] == pytest.approx(1.0) and 0 < sf[-1] < 1e-80


def test_p_values_agree_with_scholz_and_stephens_table() -> None:
    # Table 2 of Scholz and Stephens (1987) for two samples: the standardised statistic's
    # critical values at these levels (what scipy interpolates)
    levels = np.array([0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001])
    critical = np.array([0.325, 1.226, 1.961, 2.718, 3.752, 4.592, 6.546])
    assert anderson_limit.p_value(critical) == pytest.approx(levels, rel=0.03)


def _columns(ref: np.ndarray, cur: np.ndarray):  # type: ignore[no-untyped-def]
    return sort_columns(ref, CPU), sort_columns(cur, CPU)


@pytest.mark.parametrize("kind", ["continuous", "light ties", "heavy ties"])
def test_the_placed_path_equals_the_pooled_sort_path(kind: str) -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=(700, 6)), rng.standard_t(3, size=(300, 6)) * 1.2 + 0.1
    if kind == "light ties":
        ref[:40], cur[:20] = 0.0, 0.0  # a shared value, tied within both samples
    elif kind == "heavy ties":
        ref, cur = np.round(ref * 2), np.round(cur * 2)
    r, c = _columns(ref, cur)
    le = ref_counts_at_or_below(r, c).numpy()
    ref_distinct = np.array([len(np.unique(ref[:, j])) for j in range(6)])
    placed, distinct = placed_a2akn(r.values.numpy(), c.values.numpy(), le, ref_distinct)
    np.testing.assert_allclose(placed, a2akn(r, c).numpy(), rtol=1e-12)
    expected = [len(np.unique(np.r_[ref[:, j], cur[:, j]])) for j in range(6)]
    assert distinct.tolist() == expected
    result = AndersonDarlingTest(device="cpu", ties="permutation").fit(ref).score(cur)
    for j in range(6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns when it caps the p-value
            scipy_statistic = stats.anderson_ksamp([ref[:, j], cur[:, j]]).statistic
        assert result.statistic[j] == pytest.approx(scipy_statistic, abs=1e-12)


def test_rows_with_ties_or_missing_values_take_the_general_path_and_still_match_scipy() -> None:
    rng = np.random.default_rng(6)
    ref, cur = rng.normal(size=(400, 4)), rng.normal(size=(300, 4)) + 0.2
    cur[5, 0] = ref[17, 0]  # a value shared with the reference
    cur[9, 1] = cur[3, 1]  # a tie within the window
    ref[11, 2] = ref[12, 2]  # a tie within the reference
    cur[:7, 3] = np.nan  # missing values
    result = AndersonDarlingTest(device="cpu", correction="none").fit(ref).score(cur)
    for j in range(4):
        x, y = ref[:, j], cur[:, j]
        expected = stats.anderson_ksamp([x[np.isfinite(x)], y[np.isfinite(y)]]).statistic
        assert result.statistic[j] == pytest.approx(expected, abs=1e-12)


def test_a_feature_that_drifts_alone_among_fifty_can_be_flagged() -> None:
    # scipy's cap (p >= 0.001) can never pass BH's 0.05 / 50 = 0.001 for a lone feature
    rng = np.random.default_rng(8)
    ref, cur = rng.normal(size=(900, 50)), rng.normal(size=(200, 50))
    cur[:30, 7] = -4.0  # 15% of the window at an extreme value: a change in the tail
    result = AndersonDarlingTest(device="cpu").fit(ref).score(cur)
    assert result.p_value[7] < 1e-5
    assert result.drift.tolist() == [j == 7 for j in range(50)]
    ks = KSTest(device="cpu").fit(ref).score(cur)
    assert result.p_value[7] < ks.p_value[7]  # the tail is where AD looks harder than KS


def test_the_table_interpolates_the_integral_between_its_points() -> None:
    grid = np.linspace(0.0, 20.0, 401)[1:]
    middles = (grid[:-1] + grid[1:]) / 2
    direct = anderson_limit.imhof(middles, anderson_limit.eigenvalues(), 1 / 201)
    error = np.abs(anderson_limit.limit_sf(middles) / direct - 1)
    assert error[middles >= 1].max() < 1e-6
    assert error.max() < 2e-4


def test_tie_heavy_features_are_decided_by_ks_unless_permutations_are_asked_for() -> None:
    rng = np.random.default_rng(9)
    ref = np.column_stack([rng.poisson(2.0, 300), rng.normal(size=300)]).astype(float)
    cur = np.column_stack([rng.poisson(2.6, 200), rng.normal(size=200) + 0.3]).astype(float)
    ks = KSTest(device="cpu").fit(ref).score(cur)
    by_ks = AndersonDarlingTest(device="cpu").fit(ref).score(cur)
    assert by_ks.statistic[0] == ks.statistic[0] and by_ks.p_value[0] == ks.p_value[0]
    assert by_ks.extra["ks_on_ties"].tolist() == [1, 0]
    assert by_ks.extra["n_permutations"].tolist() == [0, 0]
    exact = AndersonDarlingTest(device="cpu", ties="permutation").fit(ref).score(cur)
    assert exact.extra["ks_on_ties"].tolist() == [0, 0]
    assert exact.extra["n_permutations"][0] >= 999
    # the continuous feature is the same test either way
    assert exact.p_value[1] == by_ks.p_value[1] and exact.statistic[1] == by_ks.statistic[1]
    with pytest.raises(ValueError, match="ties must be"):
        AndersonDarlingTest(ties="exact")  # type: ignore[arg-type]


@pytest.mark.parametrize("ties", ["ks", "permutation"])
def test_a_constant_feature_is_tested_and_unchanged(ties: str) -> None:
    # as KS: the same single value on both sides is no evidence of change, not "untested"
    rng = np.random.default_rng(10)
    ref = np.column_stack([np.full(200, 0.5), rng.normal(size=200)])
    cur = np.column_stack([np.full(100, 0.5), rng.normal(size=100)])
    result = AndersonDarlingTest(device="cpu", ties=ties).fit(ref).score(cur)  # type: ignore[arg-type]
    assert result.n_current.tolist() == [100, 100]
    assert result.p_value[0] == 1.0 and not result.drift[0]
