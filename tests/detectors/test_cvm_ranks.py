"""The CPU path of CvM's midranks (``ranks.rank_gaps``) against scipy's ``rankdata`` and
``cramervonmises_2samp``, and against the torch path that other devices take.

Data mixes continuous values, values shared between the samples, ties within a sample and
missing values, so that every branch of ``rank_gaps`` (a second search for shared values, tie
offsets on either side, padding) is taken.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.univariate.columns import sort_columns
from detectors.univariate.cvm import CVMTest
from detectors.univariate.ranks import own_ties, rank_gaps, tie_bounds

CPU = torch.device("cpu")


def _expected(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """``sum (2 (rx_i - i))^2`` over each sample's sorted finite values, and the distinct
    pooled finite values, from scipy's midranks."""
    x, y = np.sort(x[np.isfinite(x)]), np.sort(y[np.isfinite(y)])
    ranks = stats.rankdata(np.concatenate([x, y]))
    rx, ry = ranks[: len(x)], ranks[len(x) :]
    gx = 2 * (rx - np.arange(1, len(x) + 1))
    gy = 2 * (ry - np.arange(1, len(y) + 1))
    return float(gx @ gx), float(gy @ gy), len(np.unique(np.concatenate([x, y])))


def _mixed(rng: np.random.Generator, rows: int, features: int, missing: float) -> np.ndarray:
    """Per feature a different mix: continuous, rounded (ties within and across samples),
    a few repeated values, and missing values (NaN, +-inf)."""
    data = rng.normal(size=(rows, features))
    data[:, 1::3] = np.round(data[:, 1::3], 1)
    data[:, 2::3] = np.where(rng.random((rows, len(data[0, 2::3]))) < 0.1, 0.5, data[:, 2::3])
    return _holed(rng, data, missing)


def _holed(rng: np.random.Generator, data: np.ndarray, missing: float) -> np.ndarray:
    holes = rng.random(data.shape) < missing
    data[holes] = rng.choice([np.nan, np.inf, -np.inf], size=int(holes.sum()))
    return data


def _samples(
    kind: str, rng: np.random.Generator, n: int, m: int, missing: float
) -> tuple[np.ndarray, np.ndarray]:
    """``continuous`` and ``current ties`` (ties within the current sample only) take the
    reference's closed form, ``mixed`` its histogram."""
    if kind == "mixed":
        return _mixed(rng, n, 6, missing), _mixed(rng, m, 6, missing)
    ref = _holed(rng, rng.normal(size=(n, 6)), missing)
    cur = rng.normal(size=(m, 6))
    if kind == "current ties":  # on a grid that no reference value hits
        cur = np.round(cur, 1) + 0.05
    return ref, _holed(rng, cur, missing)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["continuous", "current ties", "mixed"]),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    m=st.integers(1, 60),
    missing=st.sampled_from([0.0, 0.2]),
)
def test_rank_gaps_match_rankdata(kind: str, seed: int, n: int, m: int, missing: float) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = _samples(kind, rng, n, m, missing)
    a, b = sort_columns(ref, CPU), sort_columns(cur, CPU)
    gaps = rank_gaps(a, b, own_ties(a.values.numpy(), a.counts.numpy()))
    for j in range(6):
        sx, sy, distinct = _expected(ref[:, j], cur[:, j])
        assert gaps.ref[j] == sx
        assert gaps.cur[j] == sy
        assert gaps.distinct[j] == distinct


def test_cpu_path_equals_the_torch_path() -> None:
    """Statistics, p-values and the tie-heavy choice as the torch path (every other device)
    makes them, run here on the CPU tensors; the Poisson counts and the features rounded to
    one decimal are tie-heavy."""
    rng = np.random.default_rng(3)
    ref, cur = _mixed(rng, 700, 9, 0.05), _mixed(rng, 500, 9, 0.05)
    ref[:, 4], cur[:, 4] = rng.poisson(2.0, 700), rng.poisson(2.5, 500)
    numpy_path = CVMTest(device="cpu", correction="none").fit(ref)
    torch_path = CVMTest(device="cpu", correction="none").fit(ref)
    assert torch_path._ref is not None
    torch_path._ref_own = None  # what fit leaves on a GPU
    torch_path._ref_ties = tie_bounds(torch_path._ref.values)
    a, b = numpy_path.score(cur), torch_path.score(cur)
    np.testing.assert_allclose(a.statistic, b.statistic, rtol=1e-12)
    np.testing.assert_allclose(a.p_value, b.p_value, rtol=1e-12)
    assert a.extra["n_permutations"].tolist() == b.extra["n_permutations"].tolist()
    pooled = [np.concatenate([ref[:, j], cur[:, j]]) for j in range(9)]
    heavy = [len(np.unique(z[np.isfinite(z)])) <= np.isfinite(z).sum() / 2 for z in pooled]
    assert (a.extra["n_permutations"] > 0).tolist() == heavy
    assert heavy[4] and not heavy[0]


@pytest.mark.parametrize("rounded", [False, True], ids=["continuous", "rounded"])
@pytest.mark.parametrize("shift", [0.0, 0.03, 0.3])
def test_cvm_matches_scipy_on_larger_samples(shift: float, rounded: bool) -> None:
    """Statistic and p-value within 1e-10 relative of scipy at sizes past the exact p-value,
    with missing values in some features and, if ``rounded``, two features rounded to 3
    decimals (light ties: scipy's formula still applies)."""
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=(3000, 8)), rng.normal(size=(2500, 8)) + shift
    if rounded:
        ref[:, :2], cur[:, :2] = np.round(ref[:, :2], 3), np.round(cur[:, :2], 3)
    ref[::7, 5], cur[::5, 6] = np.nan, np.inf
    result = CVMTest(device="cpu", correction="none").fit(ref).score(cur)
    assert not result.extra["n_permutations"].any()
    for j in range(8):
        x, y = ref[:, j], cur[:, j]
        expected = stats.cramervonmises_2samp(x[np.isfinite(x)], y[np.isfinite(y)])
        assert result.statistic[j] == pytest.approx(expected.statistic, rel=1e-10)
        assert result.p_value[j] == pytest.approx(expected.pvalue, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("shapes", [((0, 2), (5, 2)), ((5, 2), (0, 2)), ((4, 2), (3, 2))])
def test_samples_without_two_values_are_not_tested(shapes: tuple[tuple[int, int], ...]) -> None:
    ref_shape, cur_shape = shapes
    ref, cur = np.zeros(ref_shape), np.ones(cur_shape)
    ref[1:, 1] = cur[1:, 1] = np.nan  # one finite value on each side
    result = CVMTest(device="cpu").fit(ref).score(cur)
    assert np.isnan(result.p_value[1])
    assert np.isnan(result.p_value[0]) == (0 in (len(ref), len(cur)))
