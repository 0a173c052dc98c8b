"""Calibration proven, not assumed (issue #18): every registry detector, as the service runs it.

For every detector in the registry (read from the registry itself, so a detector added later
is covered, and a registry entry without a case fails) and every kind of data its column kind
takes (:data:`detectors.calibration.DATA_KINDS`: normal, log-normal, Poisson(2) integers,
categories with unequal shares, 16-dim correlated embeddings), exchangeable windows (a fresh
reference and a window from the same distribution) are decided as the service decides them:
the features' p-values corrected together with Benjamini-Hochberg, distances by their own
threshold, the window flagged when any feature drifts. At alpha 0.05 and 0.01 the flagged
share must stay within alpha plus two binomial standard errors.

Sizes (CI: 2 cores; the full grid is ``benchmarks/calibration.py``):

- numeric and categorical detectors: 400 windows of 5 features, 200 reference rows against 100
  (distances with a threshold at their documented size instead: 1,000 rows a side, Wasserstein
  3,000). 400 windows is where the bound starts to mean something at alpha 0.01: it is 0.0199,
  twice alpha (0.0718 at 0.05); below 4 (1 - alpha) / alpha windows it exceeds twice alpha;
- embeddings: 100 windows of one vector feature, 200 rows against 100 (one fit per window; the
  classifier trains two small networks per window). The bound is 0.0936 and 0.0299: a smoke
  alarm for a detector several times off; the benchmark runs 1,000.

What this proves for the distances with a threshold (PSI, Jensen-Shannon, Hellinger, KL, TVD,
Wasserstein): at their documented window size exchangeable windows stay under the bound (in
the benchmark none of 2,000 was flagged, Wasserstein 0.05-0.2% at 3,000 rows a side). Not more:
their rate is no alpha and grows as windows shrink (PSI flagged 89% of 5-feature normal windows
at 200 rows a side; docs/calibration.md has the table by size).

The seeds are fixed, so the suite is deterministic: a failure means a detector's verdicts
changed. A detector whose false-alarm rate is exactly alpha would exceed the bound on fresh
seeds with probability (exact binomial tail, :func:`detectors.calibration.chance_above_bound`)
0.031 at alpha 0.05 and 0.050 at 0.01 over 400 windows, 0.028 and 0.079 over 100; most cells
here are below alpha (discrete statistics, ties), which makes that rarer still.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from detectors import adjust
from detectors.calibration import (
    ALPHAS,
    DATA_KINDS,
    Case,
    Sizes,
    bound,
    cases,
    chance_above_bound,
    correlated_numeric,
    default_monitor_shares,
    flagged_shares,
    window_results,
)
from detectors.categorical.chisquare import ChiSquareTest
from detectors.multivariate.classifier import ClassifierTest
from detectors.multivariate.mmd import MMD
from detectors.registry import REGISTRY, DetectorSpec
from detectors.univariate.anderson import AndersonDarlingTest
from detectors.univariate.cvm import CVMTest
from detectors.univariate.ks import KSTest

UNIVARIATE = Sizes(windows=400, features=5, reference=200, current=100)
VECTOR = Sizes(windows=100, features=1, reference=200, current=100)
# every registry detector with its defaults, on every kind of data it takes; the permutation
# variants of the distances (n_permutations="auto") run in the benchmark (their permuted
# statistics are checked against a plain loop in test_univariate.py); Anderson-Darling's
# permutations on tie-heavy data (ties="permutation") run here
REGISTRY_CASES = [c for c in cases() if not c.params or c.params == {"ties": "permutation"}]
ALPHA = 0.05


def _sizes(case: Case) -> Sizes:
    return VECTOR if case.spec.multivariate else UNIVARIATE


def _seed(case: Case) -> int:
    return zlib.crc32(case.id.encode())  # fixed per case, different between cases


def test_every_registry_detector_has_a_calibration_case() -> None:
    assert {c.name for c in REGISTRY_CASES} == set(REGISTRY)
    # a detector of a column kind no data kind covers would get no case, and so fail above
    unknown = DetectorSpec("x", "detectors.x:X", frozenset({"image"}), "an image test")
    assert "x" not in {c.name for c in cases({**REGISTRY, "x": unknown})}


def test_flake_probabilities_in_the_docstring() -> None:
    computed = [
        round(chance_above_bound(a, s.windows), 3) for s in (UNIVARIATE, VECTOR) for a in ALPHAS
    ]
    assert computed == [0.031, 0.05, 0.028, 0.079]


@pytest.mark.parametrize("case", REGISTRY_CASES, ids=lambda c: c.id)
def test_false_alarms_within_two_standard_errors(case: Case) -> None:
    sizes = _sizes(case)
    shares = flagged_shares(case, ALPHAS, sizes, seed=_seed(case))
    for alpha in ALPHAS:
        limit = bound(alpha, sizes.windows)
        assert shares[alpha] <= limit, (
            f"{case.id}: {shares[alpha]:.4f} of {sizes.windows} exchangeable windows flagged "
            f"at alpha {alpha} (bound {limit:.4f})"
        )


@pytest.mark.parametrize(
    "name", sorted(n for n, s in REGISTRY.items() if not s.multivariate), ids=str
)
def test_windows_scored_together_equal_one_call_per_window(name: str) -> None:
    """The suite scores a univariate detector's windows side by side in one call: the same
    p-values and verdicts as one call per window (the service's way)."""
    kind = "categories" if "categorical" in REGISTRY[name].kinds else "normal"
    sizes = Sizes(windows=3, features=4, reference=60, current=40)
    together = window_results(Case(name, {}, kind), ALPHA, sizes, seed=3)
    apart = window_results(Case(name, {}, kind), ALPHA, sizes, seed=3, batched=False)
    for [a], [b] in zip(together, apart, strict=True):
        np.testing.assert_array_equal(a.p_value, b.p_value)
        np.testing.assert_array_equal(a.statistic, b.statistic)
        np.testing.assert_array_equal(a.drift, b.drift)


def test_each_window_draws_its_own_permutations() -> None:
    """The same window gives the same p-value; other windows draw other permutations (one set
    for every window has a level of its own, see detectors.permutations)."""
    rng = np.random.default_rng(8)
    test = MMD(device="cpu", n_permutations=99).fit(rng.normal(size=(60, 3)))
    window = rng.normal(size=(40, 3)) + 0.2
    first = test.score(window)
    assert test.score(window.copy()).p_value[0] == first.p_value[0]
    # the same rows in other orders: the same statistic, other permutations, other p-values
    orders = [test.score(window[rng.permutation(40)]) for _ in range(5)]
    for result in orders:
        assert result.statistic[0] == pytest.approx(first.statistic[0], rel=1e-9)
    assert len({float(r.p_value[0]) for r in orders}) > 1


# --- power: calibration is cheap if nothing is ever flagged ---------------------------------


def _flag_rate(cls: type, make: object, shift: float, windows: int = 50) -> float:
    rng = np.random.default_rng(99)
    flagged = 0
    for _ in range(windows):
        ref, cur = make(rng, 1000), make(rng, 300)  # type: ignore[operator]
        if shift:
            cur = cur.copy()
            cur[:, 0] = cur[:, 0] + shift
        result = cls(device="cpu", correction="bh").fit(ref).score(cur)
        flagged += bool(result.drift.any())
    return flagged / windows


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, 5))


def _categories(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(
        np.array(["a", "b", "c", "d"], dtype=object), size=(n, 5), p=[0.4, 0.3, 0.2, 0.1]
    )


@pytest.mark.parametrize("cls", [KSTest, CVMTest, AndersonDarlingTest], ids=lambda c: c.__name__)
def test_numeric_power(cls: type) -> None:
    assert _flag_rate(cls, _normal, shift=0.5) >= 0.90


@pytest.mark.parametrize(
    ("cls", "params"),
    [(AndersonDarlingTest, {"ties": "permutation"}), (CVMTest, {})],
    ids=["anderson-permutation", "cvm"],
)
def test_tie_heavy_integers_keep_their_power(cls: type, params: dict[str, str]) -> None:
    """Poisson(2) counts take permutation p-values: a rate shift 2 -> 2.8 in one of five
    features, 200 against 200 rows, is still found in at least 90% of 20 windows (with
    ``ties="ks"`` Anderson-Darling has KS's power there: test_anderson.py)."""
    rng = np.random.default_rng(18)
    hits = 0
    for _ in range(20):
        ref = rng.poisson(2.0, size=(200, 5)).astype(float)
        cur = rng.poisson(2.0, size=(200, 5)).astype(float)
        cur[:, 0] = rng.poisson(2.8, size=200)
        test = cls(device="cpu", correction="bh", **params)
        hits += bool(test.fit(ref).score(cur).drift.any())
    assert hits / 20 >= 0.90


def test_categorical_power() -> None:
    def shifted(rng: np.random.Generator, n: int) -> np.ndarray:
        data = _categories(rng, n)
        if n == 300:  # the current window: feature 0 loses class "d" to class "a"
            data[:, 0] = rng.choice(
                np.array(["a", "b", "c"], dtype=object), size=n, p=[0.5, 0.3, 0.2]
            )
        return data

    assert _flag_rate(ChiSquareTest, shifted, shift=0.0) >= 0.90


def test_uncorrected_p_values_would_alarm_too_often() -> None:
    """The bound can fail: without correction five features alarm about 23% of the time."""
    rng = np.random.default_rng(5)
    p = rng.uniform(size=(400, 5))
    uncorrected = np.mean((p < ALPHA).any(axis=1))
    corrected = np.mean([(adjust(row, "bh") < ALPHA).any() for row in p])
    assert uncorrected > bound(ALPHA, 400) >= corrected


def test_classifier_power() -> None:
    """ClassifierTest's per-fold p-values (Bonferroni over folds) still find a 1.5 sd shift of
    one of 8 coordinates, 100 vs 100 rows, in most windows."""
    flagged = 0
    for seed in range(20):
        rng = np.random.default_rng(7000 + seed)
        ref, cur = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
        cur[:, 0] += 1.5
        flagged += bool(ClassifierTest(device="cpu", seed=seed).fit(ref).score(cur).drift[0])
    assert flagged / 20 >= 0.75


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize("data", ["normal", "integers", "correlated"])
def test_the_default_monitor_with_its_joint_stage_keeps_alpha(data: str, alpha: float) -> None:
    """KS and the variance-weighted KS per feature and the joint stage (Fourier-feature
    MMD, Mahalanobis distances and principal components, Bonferroni-combined) in one weighted BH
    family (the default monitor): the window-level false-alarm rate stays
    within alpha plus two standard errors, on independent, tie-heavy and correlated columns
    (weighted Simes is valid under positive dependence). 500 windows of 5 features, 120
    reference rows against 60 (bounds 0.070 at alpha 0.05 and 0.019 at 0.01)."""
    draw = correlated_numeric if data == "correlated" else DATA_KINDS[data].draw
    sizes = Sizes(windows=500, features=5, reference=120, current=60)
    shares = default_monitor_shares(draw, (alpha,), sizes, seed=zlib.crc32(data.encode()))
    assert shares[alpha] <= bound(alpha, sizes.windows), (data, alpha, shares)


@pytest.mark.parametrize(("features", "reference", "current"), [(64, 900, 200), (50, 2000, 2000)])
def test_the_default_monitor_keeps_alpha_on_wide_windows(
    features: int, reference: int, current: int
) -> None:
    """Many alike features and large windows, where a joint test whose reference rows also
    fitted it drifts from its level (``ks_pca`` alone flagged 62% of exchangeable windows of 50
    normal features at 2,000 rows a side before its directions moved to half the reference;
    tests/detectors/test_projected_ks.py holds that). 80 windows of independent normal columns
    at alpha 0.05 (bound 0.099); measured 0.025 in both cells with Anderson-Darling per feature
    (0.025 and 0.05 with the old ``ks_pca``, whose excess the joint stage's small share
    dilutes), 0.0375 and 0.025 with KS and the weighted KS."""
    sizes = Sizes(windows=80, features=features, reference=reference, current=current)
    shares = default_monitor_shares(DATA_KINDS["normal"].draw, (0.05,), sizes, seed=features)
    assert shares[0.05] <= bound(0.05, sizes.windows), shares


def test_the_calibrated_default_is_the_service_default() -> None:
    """default_monitor_shares builds the joint stage itself (detectors cannot import the
    service): what it builds must be what a monitor gets when it says nothing."""
    import inspect

    from detectors.multivariate.fourier_mmd import FourierMMD
    from monitor.spec.model import MonitorConfig

    joint = MonitorConfig().joint
    assert joint is not None and joint.params == {}
    assert joint.detectors() == ["fourier_mmd", "mahalanobis", "ks_pca"]
    share = inspect.signature(default_monitor_shares).parameters["share"].default
    assert joint.share == share
    factors = inspect.signature(FourierMMD).parameters["factors"].default
    assert tuple(joint.bandwidths) == tuple(factors)
    assert MonitorConfig().detector("numeric").name == "ks_weighted_ks"
