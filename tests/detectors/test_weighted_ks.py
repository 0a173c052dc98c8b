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
from detectors.univariate.ks_statistic import ks_statistic
from detectors.univariate.weighted_ks import (
    KSWeightedKSTest,
    WeightedKSTest,
    at_most,
    both_statistics,
    kept_rows,
    weighted_ks_statistic,
)
from detectors.univariate.weighted_ks_null import (
    FINE_UP_TO,
    TABLE_FROM,
    TAIL_FLOOR,
    band_bound,
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
    # KS's statistic comes from the same placements, the same float as ks_statistic's
    sorted_ref, sorted_cur = sort_columns(ref, CPU), sort_columns(cur, CPU)
    ks = both_statistics(sorted_ref, sorted_cur)[1].numpy()
    np.testing.assert_array_equal(ks, ks_statistic(sorted_ref, sorted_cur).numpy())
    complete = [0, 1, 3]  # no missing value: ks_statistic's grid path
    sorted_ref, sorted_cur = (
        sort_columns(ref[:, complete], CPU),
        sort_columns(cur[:, complete], CPU),
    )
    ks = both_statistics(sorted_ref, sorted_cur)[1].numpy()
    np.testing.assert_array_equal(ks, ks_statistic(sorted_ref, sorted_cur).numpy())


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


@pytest.mark.parametrize(("n", "m"), [(300, 120), (400, 12)])
def test_the_tail_agrees_with_random_permutations(n: int, m: int) -> None:
    rng = np.random.default_rng(3)
    draws = 4000
    pooled = rng.normal(size=n + m)
    columns = np.array([rng.permutation(pooled) for _ in range(draws)])
    null = statistic_of(columns[:, :n].T.copy(), columns[:, n:].T.copy())
    for d in np.quantile(null, [0.5, 0.9, 0.99]):
        # at least d up to rounding: with a small window the extremes are atoms (the smallest or
        # the largest value current), reached by sums that differ in the last bits
        share = (null >= d * (1 - 1e-9)).mean()
        se = np.sqrt(share * (1 - share) / draws)
        assert abs(tail_probabilities(np.array([d]), n, m)[0] - share) < 4 * se + 1e-4


def test_the_table_is_never_below_the_exact_tail() -> None:
    n, m = 1200, 1000
    assert min(n, m) >= TABLE_FROM
    z = np.linspace(1.0, FINE_UP_TO + 4.0, 40)  # into the grid's 2% part
    d = z / np.sqrt(n * m / (n + m))
    exact = tail_probabilities(d, n, m)
    read = p_values(d, np.full(len(z), n), np.full(len(z), m))
    assert (read >= exact).all()
    small = (exact < 0.1) & (exact >= 1e-8)
    assert small.sum() > 10 and (read[small] / exact[small]).max() < 1.5
    beyond = exact < TAIL_FLOOR  # where the table stops: at most its last tail
    assert beyond.any() and (read[beyond] < TAIL_FLOOR).all()


def test_a_window_much_smaller_than_its_reference_has_a_heavy_tail() -> None:
    """One current value above every reference value (probability m / N) alone gives a
    standardized statistic near sqrt(n / m): the band follows the statistic that far (a fixed
    cap on it made every p-value of 100 against 5,000 values at least 0.0025), and such sizes
    are computed directly, not read from a table of large steps."""
    n, m = 3000, 20
    scale = np.sqrt(n * m / (n + m))
    ref = np.arange(float(n))
    cur = np.r_[np.linspace(100.5, n - 100.5, m - 1), n + 1.0]  # the largest value is current
    d = statistic_of(ref[:, None], cur[:, None])[0]
    assert d * scale > 10
    exact = tail_probabilities(np.array([d]), n, m)[0]
    assert m / (n + m) < exact < 0.05
    z = np.geomspace(2.0, 40.0, 30)
    direct = tail_probabilities(z / scale, n, m)
    assert direct[-1] < 1e-6 < direct[20]
    np.testing.assert_allclose(
        p_values(z / scale, np.full(30, n), np.full(30, m)), direct, rtol=1e-12
    )


def test_a_p_value_depends_on_its_own_statistic_only() -> None:
    """Statistics are computed in the band of the next power of two, whatever is beside them."""
    n, m = 300, 120
    d = np.array([0.1, 0.3, 0.7])  # z 0.9, 2.7, 6.4: two bands
    alone = [p_values(d[j : j + 1], np.array([n]), np.array([m]))[0] for j in range(3)]
    together = p_values(d, np.full(3, n), np.full(3, m))
    assert alone == together.tolist()
    assert [band_bound(z) for z in (0.5, 4.0, 4.1, 9.0)] == [4.0, 4.0, 8.0, 16.0]


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


def test_at_most_keeps_the_same_random_rows_for_the_same_size() -> None:
    data = np.arange(2000.0).reshape(400, 5)
    kept = at_most(data, 60)
    assert kept.shape == (60, 5) and at_most(data, 400) is data and at_most(data, None) is data
    rows = kept[:, 0] / 5
    assert (np.diff(rows) > 0).all() and rows.max() > 300  # spread, in order, not the first 60
    np.testing.assert_array_equal(kept, at_most(data.copy(), 60))  # seeded by the sizes
    assert not np.array_equal(at_most(data[:399], 60), kept)


def test_the_weighted_gap_sees_at_most_max_values_and_ks_sees_all() -> None:
    rng = np.random.default_rng(10)
    ref, cur = rng.normal(size=(400, 3)), rng.normal(size=(300, 3))
    cur[:, 1] += 0.5
    result = KSWeightedKSTest(device="cpu", max_values=100).fit(ref).score(cur)
    kept_ref, kept_cur = at_most(ref, 100), at_most(cur, 100)
    np.testing.assert_allclose(result.statistic, statistic_of(kept_ref, kept_cur))
    ks = [stats.ks_2samp(ref[:, j], cur[:, j]).statistic for j in range(3)]
    np.testing.assert_allclose(result.extra["ks_statistic"], ks)
    np.testing.assert_allclose(
        result.extra["p_weighted"], p_values(result.statistic, np.full(3, 100), np.full(3, 100))
    )
    assert result.n_reference.tolist() == [400] * 3 and result.drift.tolist() == [
        False,
        True,
        False,
    ]
    whole = KSWeightedKSTest(device="cpu", max_values=None).fit(ref).score(cur)
    np.testing.assert_allclose(whole.statistic, statistic_of(ref, cur))
    assert not np.array_equal(whole.statistic, result.statistic)
    alone = WeightedKSTest(device="cpu", max_values=100).fit(ref).score(cur)
    np.testing.assert_array_equal(alone.statistic, result.statistic)
    with pytest.raises(ValueError, match="max_values"):
        KSWeightedKSTest(max_values=0)


def test_a_feature_missing_from_the_kept_rows_is_decided_by_ks() -> None:
    rng = np.random.default_rng(12)
    ref, cur = rng.normal(size=(150, 2)), rng.normal(size=(400, 2)) + 0.6
    cur[kept_rows(400, 100), 1] = np.nan  # feature 1 has values only in rows the thinning drops
    result = KSWeightedKSTest(device="cpu", max_values=100).fit(ref).score(cur)
    assert np.isfinite(result.extra["p_weighted"][0]) and np.isnan(result.extra["p_weighted"][1])
    assert result.p_value[1] == result.extra["p_ks"][1] < 1e-3
    assert result.n_current.tolist() == [400, 300] and result.drift.tolist() == [True, True]


def test_thinned_p_values_stay_calibrated() -> None:
    """Exchangeable columns, 400 against 250 values thinned to 120 a side: the weighted test's
    p-values are those of 120 against 120, so at most alpha + 2 standard errors of them fall at
    or below alpha (thinning by position without looking at values is what makes that true:
    keeping each side's smallest values would compare two different distributions)."""
    rng = np.random.default_rng(11)
    columns = 800
    result = WeightedKSTest(device="cpu", max_values=120).fit(rng.normal(size=(400, columns)))
    p = result.score(rng.normal(size=(250, columns))).p_value
    for alpha in (0.05, 0.2):
        share = float((p <= alpha).mean())
        assert share <= alpha + 2 * np.sqrt(alpha * (1 - alpha) / columns), (alpha, share)
        assert share >= alpha - 4 * np.sqrt(alpha * (1 - alpha) / columns), (alpha, share)
