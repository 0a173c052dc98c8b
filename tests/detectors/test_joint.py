"""The joint stage's parts (issue #18): weights, the block test and the multi-bandwidth MMD."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.joint import (
    BandwidthsMMD,
    BlockTest,
    Bonferroni,
    joint_family_size,
    marginal_family_size,
    stage_weights,
)
from detectors.multivariate.mmd import MMD
from detectors.result import DriftResult
from detectors.verdict import window_verdict


def _result(p: list[float]) -> DriftResult:
    n = len(p)
    return DriftResult(
        "x", tuple(f"f{i}" for i in range(n)), np.zeros(n), np.array(p), np.array(p),
        np.zeros(n, bool), 0.05, "none", np.ones(n, int), np.ones(n, int),
    )  # fmt: skip


@pytest.mark.parametrize(("m", "k", "share"), [(9, 1, 0.2), (30, 1, 0.3), (3, 2, 0.5)])
def test_weights_average_one_and_give_the_joint_tests_their_share(
    m: int, k: int, share: float
) -> None:
    w = stage_weights(m, k, share)
    assert w.mean() == pytest.approx(1.0)
    assert w[m:].sum() / w.sum() == pytest.approx(share)


def test_the_weighted_family_is_plain_bh_on_weighted_p_values() -> None:
    marginal, joint = _result([0.001, 0.3, 0.04, 0.9]), _result([0.004])
    verdict = window_verdict([marginal], alpha=0.05, correction="bh", joint=[joint], share=0.2)
    w = stage_weights(4, 1, 0.2)
    p = np.array([0.001, 0.3, 0.04, 0.9, 0.004]) / w
    order = np.argsort(p)
    bh = np.minimum.accumulate((p[order] * 5 / np.arange(1, 6))[::-1])[::-1]
    expected = np.empty(5)
    expected[order] = np.minimum(bh, 1.0)
    assert np.allclose(verdict.p_adjusted, expected)
    assert verdict.stages == ("marginal", "joint")
    # without a joint stage nothing is weighted: plain BH, as before
    plain = window_verdict([marginal, joint], alpha=0.05, correction="bh")
    assert plain.n_joint == 0 and plain.stages == ("marginal",)


def test_family_sizes_cover_the_smallest_weighted_level() -> None:
    # the joint test's smallest level is share * alpha: that of 1 / share tests
    assert joint_family_size(0.2) == 5 and joint_family_size(0.2, n_joint=2) == 10
    # a per-feature test's is (1 - share) * alpha / m
    assert marginal_family_size(8, 0.2) == 10


def test_the_block_is_standardized_imputed_and_subsampled_reproducibly() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(600, 3)) * [1.0, 1000.0, 0.001]  # three units apart
    block = BlockTest(MMD(device="cpu", n_permutations=100), max_rows=200).fit(ref)
    cur = rng.normal(size=(500, 3)) * [1.0, 1000.0, 0.001]
    cur[::7, 1] = np.nan  # missing values sit at the reference mean, they do not fail the test
    first, again = block.score(cur), block.score(cur.copy())
    assert first.p_value[0] == again.p_value[0]  # the window's own seed: same window, same p
    assert first.n_reference[0] == first.n_current[0] == 200  # at most max_rows a side
    # standardized: the third feature (units of 1e-3) moving 1 sd is seen like the first
    moved = cur.copy()
    moved[:, 2] += 0.001
    assert block.score(moved).p_value[0] < 0.05
    with pytest.raises(ValueError, match="rows, >= 2"):
        BlockTest(MMD(device="cpu")).fit(ref[:, :1])


def test_bandwidths_mmd_is_bonferroni_over_its_bandwidths() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(300, 4))
    cur = rng.normal(size=(150, 4)) * [1.0, 1.0, 1.0, 1.4]
    combined = BandwidthsMMD(device="cpu", factors=(0.5, 1.0), n_permutations=300).fit(ref)
    res = combined.score(cur)
    alone = [
        MMD(device="cpu", n_permutations=300, bandwidth=float(b)).fit(ref).score(cur)
        for b in res.extra["bandwidth"]
    ]
    p = np.array([float(r.p_value[0]) for r in alone])
    assert np.allclose(res.extra["p_values"], p)
    assert res.p_value[0] == pytest.approx(min(1.0, 2 * p.min()))
    with pytest.raises(ValueError, match="factors"):
        BandwidthsMMD(factors=(0.0,))


def test_a_narrow_bandwidth_sees_a_change_of_correlation_the_median_misses() -> None:
    """Why the joint stage hedges over bandwidths: two of 30 standardized features flip their
    correlation, every marginal kept."""
    rng = np.random.default_rng(2)

    def draw(n: int, rho: float) -> np.ndarray:
        x = rng.normal(size=(n, 30))
        pair = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
        x[:, :2] = pair
        return x

    ref, cur = draw(600, 0.9), draw(200, -0.9)
    narrow = BandwidthsMMD(device="cpu", factors=(0.25,), n_permutations=200).fit(ref)
    median = BandwidthsMMD(device="cpu", factors=(1.0,), n_permutations=200).fit(ref)
    assert narrow.score(cur).p_value[0] < 0.01 < median.score(cur).p_value[0]


def test_bonferroni_combines_its_tests_p_values() -> None:
    from detectors.multivariate.fourier_mmd import FourierMMD
    from detectors.multivariate.mahalanobis import MahalanobisTest

    rng = np.random.default_rng(4)
    ref = rng.normal(size=(400, 4))
    cur = rng.normal(size=(150, 4)) * [1.0, 1.0, 1.0, 1.3]
    combined = Bonferroni([FourierMMD(device="cpu"), MahalanobisTest(device="cpu")]).fit(ref)
    assert combined.method == "fourier_mmd+mahalanobis"
    assert combined.min_reference_rows() == 3
    res = combined.score(cur)
    p = np.array(
        [
            FourierMMD(device="cpu").fit(ref).score(cur).p_value[0],
            MahalanobisTest(device="cpu").fit(ref).score(cur).p_value[0],
        ]
    )
    assert np.allclose(res.extra["p_values"], p)
    assert res.p_value[0] == pytest.approx(min(1.0, 2 * p.min()))
    assert int(res.extra["decided_by"]) == int(np.argmin(p))
    with pytest.raises(ValueError, match="two or more"):
        Bonferroni([FourierMMD(device="cpu")])
