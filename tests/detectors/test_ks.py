"""KSTest against scipy.stats.ks_2samp (methods auto, exact and asymp), plus invariants.

Tolerance: statistic to 1e-12 (both are exact ratios of counts), p-value to 1e-9 relative
(the exact p-value is a sum of path probabilities; rounding stays near 1e-15).
"""

from __future__ import annotations

from math import gcd

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.stats._stats_py import _attempt_exact_2kssamp

from detectors import KSTest

RNG = np.random.default_rng(20261124)
DATASETS = {
    "normal shift": (
        RNG.normal(size=(800, 3)),
        RNG.normal(size=(600, 3)) + np.array([0.0, 0.1, 0.5]),
    ),
    "heavy ties": (
        RNG.integers(0, 5, size=(500, 2)).astype(float),
        RNG.integers(0, 6, size=(700, 2)).astype(float),
    ),
    "tiny samples": (RNG.normal(size=(7, 2)), RNG.normal(size=(5, 2))),
    "different scales": (
        RNG.exponential(size=(1000, 2)) * [1, 1000],
        RNG.exponential(size=(900, 2)) * [1.2, 1000],
    ),
    "large": (RNG.normal(size=(20_000, 2)), RNG.normal(0.02, 1, size=(15_000, 2))),
}


@pytest.mark.parametrize("mode", ["auto", "exact", "asymp"])
@pytest.mark.parametrize("name", list(DATASETS))
def test_matches_scipy(name: str, mode: str) -> None:
    ref, cur = DATASETS[name]
    if mode == "exact" and name == "large":
        pytest.skip("exact p-values on 20,000 rows are slow in scipy too; 'auto' covers sizes")
    result = KSTest(device="cpu", correction="none", mode=mode).fit(ref).score(cur)  # type: ignore[arg-type]
    for j in range(ref.shape[1]):
        expected = stats.ks_2samp(ref[:, j], cur[:, j], method=mode)
        assert result.statistic[j] == pytest.approx(expected.statistic, abs=1e-12)
        assert result.p_value[j] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert list(result.n_reference) == [ref.shape[0]] * ref.shape[1]


def test_missing_values_are_left_out_per_feature() -> None:
    ref, cur = RNG.normal(size=(300, 2)), RNG.normal(size=(200, 2)) + 0.3
    cur[::3, 0] = np.nan
    result = KSTest(device="cpu").fit(ref).score(cur)
    kept = cur[~np.isnan(cur[:, 0]), 0]
    assert result.statistic[0] == pytest.approx(
        stats.ks_2samp(ref[:, 0], kept).statistic, abs=1e-12
    )
    assert result.n_current.tolist() == [len(kept), 200]


def test_all_missing_feature_is_untested_not_drift() -> None:
    cur = RNG.normal(size=(50, 2))
    cur[:, 1] = np.nan
    result = KSTest(device="cpu").fit(RNG.normal(size=(50, 2))).score(cur)
    assert np.isnan(result.p_value[1]) and not result.drift[1]


def test_an_empty_sample_is_untested_not_an_error() -> None:
    data = RNG.normal(size=(30, 2))
    for ref, cur in ((data, data[:0]), (data[:0], data)):
        result = KSTest(device="cpu").fit(ref).score(cur)
        assert np.isnan(result.p_value).all() and not result.drift.any()


def test_chunking_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    ref, cur = RNG.normal(size=(400, 9)), RNG.normal(size=(300, 9))
    whole = KSTest(device="cpu").fit(ref).score(cur)
    monkeypatch.setattr(KSTest, "chunk_budget", 1000)  # one feature per chunk
    chunked = KSTest(device="cpu").fit(ref).score(cur)
    np.testing.assert_array_equal(whole.statistic, chunked.statistic)


def test_shape_errors_are_clear() -> None:
    test = KSTest(device="cpu").fit(np.zeros((5, 2)), ["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(rows, 2\)"):
        test.score(np.zeros((5, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        KSTest(device="cpu").score(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="2-D"):
        KSTest(device="cpu").fit(np.zeros(5))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 60), st.integers(1, 4)), elements=finite))
def test_identical_samples_give_no_drift(data: np.ndarray) -> None:
    result = KSTest(device="cpu").fit(data).score(data)
    assert np.all(result.statistic == 0.0)
    assert np.all(result.p_value == 1.0)
    assert not result.drift.any()


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(2, 50), st.just(3)), elements=finite),
    arrays(np.float64, st.tuples(st.integers(2, 50), st.just(3)), elements=finite),
    st.randoms(use_true_random=False),
)
def test_p_values_are_probabilities_and_order_does_not_matter(
    ref: np.ndarray, cur: np.ndarray, rnd: object
) -> None:
    result = KSTest(device="cpu").fit(ref).score(cur)
    assert np.all((result.p_value >= 0) & (result.p_value <= 1))
    shuffled = cur[np.random.default_rng(0).permutation(len(cur))]
    again = KSTest(device="cpu").fit(ref[::-1]).score(shuffled)
    np.testing.assert_array_equal(result.statistic, again.statistic)
    np.testing.assert_array_equal(result.p_value, again.p_value)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(40, 40), (37, 53), (500, 350), (9, 1)])
def test_exact_p_value_matches_scipy_at_every_lattice_distance(n_ref: int, n_cur: int) -> None:
    """Every possible statistic h/lcm of these sizes, not just the ones random data hits."""

    from detectors.univariate.ks import ks_exact_p_value

    lcm = n_ref * n_cur // gcd(n_ref, n_cur)
    h = np.unique(np.linspace(0, lcm, 60).round().astype(int))
    d = h / lcm
    ours = ks_exact_p_value(d, np.full(len(d), n_ref), np.full(len(d), n_cur))

    for dj, pj in zip(d, ours, strict=True):
        ok, _, expected = _attempt_exact_2kssamp(n_ref, n_cur, gcd(n_ref, n_cur), dj, "two-sided")
        assert ok
        assert pj == pytest.approx(expected, rel=1e-9, abs=1e-300)


@settings(max_examples=80, deadline=None)
@example(ref=np.zeros((7, 2)), cur=np.vstack([[1.0, 0.0], np.zeros((6, 2))]))
@given(
    arrays(np.float64, st.tuples(st.integers(1, 40), st.just(2)), elements=st.integers(-3, 3)),
    arrays(np.float64, st.tuples(st.integers(1, 40), st.just(2)), elements=st.integers(-3, 3)),
)
def test_statistic_matches_scipy_with_many_ties(ref: np.ndarray, cur: np.ndarray) -> None:
    """Small integer values: most values are tied within and across the samples."""
    result = KSTest(device="cpu", correction="none").fit(ref).score(cur)
    for j in range(2):
        expected = stats.ks_2samp(ref[:, j], cur[:, j])
        assert result.statistic[j] == pytest.approx(expected.statistic, abs=1e-12)
        p = expected.pvalue
        n, m = len(ref), len(cur)
        ok, _, exact = _attempt_exact_2kssamp(n, m, gcd(n, m), expected.statistic, "two-sided")
        if not ok and 1.0 < exact < 1.0 + 1e-12:
            # at the smallest possible gap with equal sizes the exact sum rounds to just above
            # 1; scipy then falls back to the asymptotic value, Tidewatch keeps the exact 1
            p = 1.0
        assert result.p_value[j] == pytest.approx(p, rel=1e-9, abs=1e-300)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 30), st.just(3)), elements=st.integers(-4, 4)),
    arrays(np.float64, st.tuples(st.integers(1, 30), st.just(3)), elements=finite),
)
@settings(deadline=None, max_examples=50)
def test_merged_placement_equals_a_binary_search(ref: np.ndarray, cur: np.ndarray) -> None:
    """The CPU's placement (numpy's search row by row) counts ``#ref <= y`` exactly as torch's
    ``searchsorted(right=True)`` does, ties and missing values (+inf) included."""
    from detectors.univariate.columns import sort_columns
    from detectors.univariate.ks_statistic import ref_counts_at_or_below

    ref[0, 0], cur[-1, 1] = np.nan, np.nan
    cur[: len(cur) // 2, 2] = ref[0, 2]  # values shared with the reference
    sorted_ref = sort_columns(ref, torch.device("cpu"))
    sorted_cur = sort_columns(cur, torch.device("cpu"))
    expected = torch.searchsorted(sorted_ref.values, sorted_cur.values, right=True)
    assert torch.equal(ref_counts_at_or_below(sorted_ref, sorted_cur), expected)


def _numerators(ref: np.ndarray, cur: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    from detectors.univariate.columns import sort_columns
    from detectors.univariate.ks_statistic import general_numerators, grid_numerators

    sorted_ref = sort_columns(ref, torch.device("cpu"))
    sorted_cur = sort_columns(cur, torch.device("cpu"))
    grid = grid_numerators(sorted_ref.values.numpy(), sorted_cur.values.numpy(), step)
    return grid, general_numerators(sorted_ref, sorted_cur).numpy()


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 70), st.just(3)), elements=st.integers(-3, 3)),
    arrays(np.float64, st.tuples(st.integers(1, 70), st.just(3)), elements=finite),
    st.sampled_from([1, 2, 3, 5, 10, 16, 64]),
    st.booleans(),
)
def test_grid_statistic_equals_placing_every_value(
    ref: np.ndarray, cur: np.ndarray, step: int, integral: bool
) -> None:
    """The CPU's grid (every ``step``-th window value placed, the rest only where a bound says
    the largest gap could be) against every value placed: ties within the window and shared
    with the reference, a window narrower than the grid step, equal and unequal sizes."""
    if integral:
        cur = np.round(cur) % 5 - 2  # small integers: shared with the reference and repeated
    grid, general = _numerators(ref, cur, step)
    np.testing.assert_array_equal(grid, general)


@pytest.mark.parametrize(
    ("shift", "scale"), [(0.0, 1.0), (0.03, 1.0), (0.5, 1.0), (0.0, 3.0), (10.0, 1.0)]
)
def test_grid_statistic_on_drifted_gaussians(shift: float, scale: float) -> None:
    """Enough rows for the bound to leave most intervals out (and disjoint samples at 10 sd)."""
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(3000, 4))
    cur = rng.normal(shift, scale, size=(2500, 4))
    cur[:40, 3] = ref[:40, 3]  # some values shared with the reference
    grid, general = _numerators(ref, cur, 64)
    np.testing.assert_array_equal(grid, general)


def test_missing_and_infinite_values_are_left_out_after_the_sort() -> None:
    """The CPU sort finds non-finite values from each sorted row's ends (-inf first, NaN last)."""
    from detectors.univariate.columns import sort_columns

    data = RNG.normal(size=(50, 5))
    data[3, 0], data[7, 1], data[9, 2], data[[1, 2], 3] = np.nan, -np.inf, np.inf, np.nan
    result = sort_columns(data, torch.device("cpu"))
    finite = np.isfinite(data)
    assert result.counts.tolist() == finite.sum(axis=0).tolist()
    for j in range(5):
        kept = np.sort(data[finite[:, j], j])
        row = result.values[j].numpy()
        np.testing.assert_array_equal(row[: len(kept)], kept)
        assert np.all(row[len(kept) :] == np.inf)
