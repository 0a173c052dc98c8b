"""weighted_ks and ks_weighted_ks: the variance-weighted KS statistic, its exact null, and the
tests built on them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from detectors.registry import build
from detectors.univariate.anderson_ks import cauchy_combination
from detectors.univariate.columns import sort_columns
from detectors.univariate.ks import ks_p_values_by_size
from detectors.univariate.weighted_ks import (
    KSWeightedKSTest,
    WeightedKSTest,
    weighted_ks_statistic,
)
from detectors.univariate.weighted_ks_null import (
    TABLE_FROM,
    Z_CAP,
    p_values,
    tail_probabilities,
)

CPU = torch.device("cpu")


def reference_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """The definition, written out: at every distinct pooled value but the largest,
    ``|F_x - F_y| / sqrt(H (1 - H))`` with the right-continuous empirical CDFs."""
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    pooled = np.concatenate([x, y])
    best = 0.0
    for v in np.unique(pooled)[:-1]:
        f, g, h = (x <= v).mean(), (y <= v).mean(), (pooled <= v).mean()
        best = max(best, abs(f - g) / np.sqrt(h * (1 - h)))
    return best


def statistic_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return weighted_ks_statistic(sort_columns(x, CPU), sort_columns(y, CPU)).numpy()


def test_the_statistic_is_its_definition_with_ties_and_missing_values() -> None:
    rng = np.random.default_rng(0)
    ref = np.column_stack(
        [rng.normal(size=60), rng.integers(0, 4, 60), rng.normal(size=60), np.arange(60.0)]
    )
    cur = np.column_stack(
        [rng.normal(0.5, 1, 25), rng.integers(1, 5, 25), rng.normal(size=25), np.arange(25.0)]
    )
    ref[[3, 17], 2] = np.nan
    cur[[0, 9, 11], 2] = np.inf
    cur[:5, 3] = ref[:5, 3]  # values shared by both samples
    got = statistic_of(ref, cur)
    want = [reference_statistic(ref[:, j], cur[:, j]) for j in range(ref.shape[1])]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # symmetric in the two samples
    np.testing.assert_allclose(statistic_of(cur, ref), got, rtol=1e-12)


def test_a_side_without_values_gives_zero() -> None:
    ref = np.array([[1.0, np.nan], [2.0, np.nan]])
    cur = np.array([[3.0, 1.0]])
    assert statistic_of(ref, cur)[1] == 0.0


@pytest.mark.parametrize(("n", "m"), [(4, 3), (5, 5), (7, 2), (6, 6)])
def test_the_tail_is_exact_against_every_arrangement(n: int, m: int) -> None:
    """Every placement of ``m`` current values among ``n + m`` is one equally likely path."""
    values = []
    for chosen in itertools.combinations(range(n + m), m):
        is_cur = np.zeros(n + m, dtype=bool)
        is_cur[list(chosen)] = True
        order = np.arange(n + m, dtype=float)
        values.append(reference_statistic(order[~is_cur], order[is_cur]))
    observed = np.array(values)
    distinct = np.unique(observed)
    enumerated = np.array([(observed >= d - 1e-12).mean() for d in distinct])
    np.testing.assert_allclose(tail_probabilities(distinct, n, m), enumerated, atol=1e-13)


def test_the_band_holds_everything_that_can_stay_inside() -> None:
    """Only the widest band's points are carried: a small statistic's tail comes out the same
    whether it is computed alone (narrow band) or beside a large one (wide band)."""
    small = np.array([0.15, 0.2, 0.25])
    alone = tail_probabilities(small, 300, 120)
    beside = tail_probabilities(np.r_[small, 0.6], 300, 120)[:3]
    np.testing.assert_allclose(alone, beside, rtol=1e-12)
    assert 0.001 < alone[-1] < alone[0] < 1


def test_the_tail_agrees_with_random_permutations() -> None:
    rng = np.random.default_rng(3)
    n, m, draws = 300, 120, 4000
    pooled = rng.normal(size=n + m)
    columns = np.array([rng.permutation(pooled) for _ in range(draws)])
    null = statistic_of(columns[:, :n].T.copy(), columns[:, n:].T.copy())
    for d in np.quantile(null, [0.5, 0.9, 0.99]):
        share = (null >= d).mean()
        se = np.sqrt(share * (1 - share) / draws)
        assert abs(tail_probabilities(np.array([d]), n, m)[0] - share) < 4 * se + 1e-4


def test_the_table_is_never_below_the_exact_tail() -> None:
    n, m = 1200, 900
    assert n + m >= TABLE_FROM
    z = np.linspace(1.0, Z_CAP - 0.01, 25)
    d = z / np.sqrt(n * m / (n + m))
    exact = tail_probabilities(d, n, m)
    read = p_values(d, np.full(25, n), np.full(25, m))
    assert (read >= exact).all()
    small = exact < 0.1
    assert small.sum() > 10 and (read[small] / exact[small]).max() < 1.5


def test_statistics_beyond_the_cap_get_the_cap_s_bound() -> None:
    n, m = 400, 300
    cap = Z_CAP / np.sqrt(n * m / (n + m))
    tails = tail_probabilities(np.array([cap, 2 * cap]), n, m)
    assert tails[0] == tails[1] and 0 < tails[0] < 1e-9


def test_values_beyond_the_reference_s_range_are_caught_where_ks_misses_them() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(900, 1))
    cur = rng.normal(size=(200, 1))
    cur[:8, 0] = ref.min() - 1.0  # 4% of the window below everything the reference holds
    weighted = WeightedKSTest(device="cpu").fit(ref).score(cur)
    ks = build("ks", {}, device="cpu").fit(ref).score(cur)
    assert weighted.p_value[0] < 1e-4 < 0.05 < ks.p_value[0]


def test_the_detector_s_p_value_is_the_tail_of_its_statistic() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=(150, 3)), rng.normal(size=(80, 3))
    cur[:, 2] *= 1.6
    result = WeightedKSTest(device="cpu").fit(ref).score(cur)
    np.testing.assert_allclose(result.statistic, statistic_of(ref, cur))
    np.testing.assert_allclose(result.p_value, tail_probabilities(result.statistic, 150, 80))
    assert result.method == "weighted_ks" and result.drift.tolist() == [False, False, True]


def test_ks_weighted_ks_combines_both_p_values() -> None:
    rng = np.random.default_rng(6)
    ref, cur = rng.normal(size=(300, 3)), rng.normal(size=(120, 3))
    cur[:, 1] += 0.6
    ref[:4, 2] = np.nan
    result = KSWeightedKSTest(device="cpu").fit(ref).score(cur)
    n = np.array([300, 300, 296])
    p_weighted = p_values(result.statistic, n, np.full(3, 120))
    ks = [stats.ks_2samp(ref[:, j][np.isfinite(ref[:, j])], cur[:, j]) for j in range(3)]
    np.testing.assert_allclose(result.extra["ks_statistic"], [k.statistic for k in ks])
    p_ks = ks_p_values_by_size(result.extra["ks_statistic"], n, np.full(3, 120))
    np.testing.assert_allclose(result.extra["p_ks"], [k.pvalue for k in ks], rtol=1e-6)
    np.testing.assert_allclose(result.extra["p_weighted"], p_weighted)
    np.testing.assert_allclose(result.p_value, cauchy_combination(p_weighted, p_ks))
    assert result.drift.tolist() == [False, True, False]


@pytest.mark.parametrize("make", ["registry", "class"])
def test_a_feature_without_values_is_untested(make: str) -> None:
    if make == "registry":
        test, name = build("ks_weighted_ks", {}, device="cpu", alpha=0.01), "ks_weighted_ks"
    else:
        test, name = WeightedKSTest(device="cpu", alpha=0.01), "weighted_ks"
    ref = np.random.default_rng(7).normal(size=(50, 2))
    cur = np.random.default_rng(8).normal(size=(30, 2))
    cur[:, 1] = np.nan
    result = test.fit(ref).score(cur)
    assert result.method == name
    assert np.isfinite(result.p_value[0]) and np.isnan(result.p_value[1])
    assert not result.drift[1]
    with pytest.raises(ValueError):
        test.score(cur[:, :1])
