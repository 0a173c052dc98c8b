"""ChiSquareTest against scipy.stats.chi2_contingency(correction=False); corrections vs scipy.

Tolerance: statistic and p-value to 1e-9 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors import ChiSquareTest, adjust
from detectors.device import resolve_device

RNG = np.random.default_rng(7)


def scipy_chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    cats = sorted(set(map(str, ref)) | set(map(str, cur)))
    table = [[list(map(str, sample)).count(c) for c in cats] for sample in (ref, cur)]
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


CASES = {
    "strings": (
        RNG.choice(["a", "b", "c"], 400),
        RNG.choice(["a", "b", "c"], 300, p=[0.5, 0.3, 0.2]),
    ),
    "integers": (RNG.integers(0, 6, 500), RNG.integers(0, 6, 200)),
    "unseen category": (RNG.choice(["a", "b"], 300), RNG.choice(["a", "b", "new"], 300)),
    "vanished category": (RNG.choice(["a", "b", "c"], 300), RNG.choice(["a", "b"], 250)),
    "two categories": (RNG.choice(["x", "y"], 100), RNG.choice(["x", "y"], 80, p=[0.8, 0.2])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_scipy(name: str) -> None:
    ref, cur = CASES[name]
    result = (
        ChiSquareTest(device="cpu")
        .fit(ref.astype(object)[:, None])
        .score(cur.astype(object)[:, None])
    )
    stat, p = scipy_chi2(ref, cur)
    assert result.statistic[0] == pytest.approx(stat, rel=1e-9)
    assert result.p_value[0] == pytest.approx(p, rel=1e-9)


def test_several_features_with_missing_values() -> None:
    ref = np.array([["a", "x"], ["b", None], ["a", "y"]] * 50, dtype=object)
    cur = np.array([["b", "x"], ["b", float("nan")], ["a", "z"]] * 40, dtype=object)
    result = ChiSquareTest(device="cpu").fit(ref, ["f1", "f2"]).score(cur)
    assert result.features == ("f1", "f2")
    assert result.n_reference.tolist() == [150, 100] and result.n_current.tolist() == [120, 80]
    stat, _ = scipy_chi2(ref[:, 1][ref[:, 1] != None], np.array(["x", "z"] * 40))  # noqa: E711
    assert result.statistic[1] == pytest.approx(stat, rel=1e-9)


def test_single_category_everywhere_is_no_drift() -> None:
    data = np.array([["same"]] * 20, dtype=object)
    result = ChiSquareTest(device="cpu").fit(data).score(data)
    assert result.p_value[0] == 1.0 and not result.drift[0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=80))
def test_identical_samples_give_no_drift(values: list[str]) -> None:
    data = np.array(values, dtype=object)[:, None]
    result = ChiSquareTest(device="cpu").fit(data).score(data)
    assert result.statistic[0] == pytest.approx(0.0, abs=1e-12)
    assert not result.drift[0]


@pytest.mark.parametrize("seed", range(5))
def test_bh_matches_scipy(seed: int) -> None:
    p = np.random.default_rng(seed).uniform(size=40) ** 3
    np.testing.assert_allclose(
        adjust(p, "bh"), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )
    np.testing.assert_allclose(adjust(p, "bonferroni"), np.minimum(p * 40, 1.0))
    np.testing.assert_array_equal(adjust(p, "none"), p)


def test_untested_features_do_not_count_as_tests() -> None:
    p = np.array([0.01, np.nan, 0.02])
    out = adjust(p, "bonferroni")
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust(p, "holm-ish")


def test_device_resolution() -> None:
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device("cpu").type == "cpu"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
