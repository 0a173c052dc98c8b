"""False alarms of every registry detector on exchangeable windows, as the service decides.

A calibrated monitor flags a window without drift with probability at most alpha. This module
measures it: for a registry detector and a kind of data it draws ``windows`` independent pairs
(a fresh reference and a window from the same distribution), builds the detector as the
service does (:func:`detectors.registry.build` with the monitor's alpha and the family size),
and decides each window as the service does (:func:`detectors.verdict.window_verdict`: the
features' p-values corrected together with Benjamini-Hochberg, distances by their own
threshold; the window is flagged when any feature drifts). The flagged share is then compared
with ``alpha + 2 * sqrt(alpha * (1 - alpha) / windows)``.

Kinds of data (:data:`DATA_KINDS`): continuous (standard normal, log-normal), tie-heavy
integers (Poisson(2): about 8 distinct values in a few hundred), categories with unequal shares
(0.55, 0.25, 0.15, 0.05) and embeddings (16 correlated Gaussian coordinates, AR(1) with
correlation 0.8 between neighbours).

Univariate detectors test every column on its own, so the windows' columns are laid side by
side and scored in one call (``windows x features`` columns, the family size set to one
window's features): the same numbers as one call per window, far faster (``tests/detectors``
checks the equality). Not when the call drew permutations (its result's
``extra["n_permutations"]``): the service draws them per window, from the window's values, so
such a detector is then fitted and scored once per window, as multivariate ones always are.

Distances without a p-value (PSI, Jensen-Shannon, ... at their default threshold) are not
tests: their false-alarm rate falls as windows grow, whatever alpha. Their specs name the window
size their thresholds are meant for (``threshold_rows``) and they are measured at that size.

>>> case = Case("ks", {}, "normal")
>>> shares = flagged_shares(case, (0.05,), Sizes(windows=40, features=3), seed=1)
>>> 0.0 <= shares[0.05] <= 1.0
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from detectors.registry import REGISTRY, DetectorSpec, build
from detectors.result import DriftResult
from detectors.verdict import family_size, window_verdict

ALPHAS = (0.05, 0.01)
CORRECTION = "bh"
EMBEDDING_DIM = 16

Draw = Callable[[np.random.Generator, int, int], Any]


def _embedding_mixer(dim: int, rho: float = 0.8) -> np.ndarray:
    """Cholesky factor of the AR(1) covariance ``rho ** |i - j|``."""
    index = np.arange(dim)
    return np.linalg.cholesky(rho ** np.abs(index[:, None] - index[None, :]))


_MIXER = _embedding_mixer(EMBEDDING_DIM)
_CATEGORIES = np.array(["a", "b", "c", "d"], dtype=object)
_SHARES = [0.55, 0.25, 0.15, 0.05]


@dataclass(frozen=True)
class DataKind:
    """A kind of exchangeable data for one column kind; ``draw(rng, rows, features)`` gives a
    (rows, features) array, or for vectors a list of ``features`` (rows, dim) arrays."""

    name: str
    column_kind: str
    draw: Draw
    description: str


DATA_KINDS: dict[str, DataKind] = {
    k.name: k
    for k in [
        DataKind("normal", "numeric", lambda g, n, f: g.normal(size=(n, f)), "standard normal"),
        DataKind(
            "skewed",
            "numeric",
            lambda g, n, f: g.lognormal(0.0, 1.0, size=(n, f)),
            "log-normal (0, 1)",
        ),
        DataKind(
            "integers",
            "numeric",
            lambda g, n, f: g.poisson(2.0, size=(n, f)).astype(np.float64),
            "Poisson(2) counts",
        ),
        DataKind(
            "categories",
            "categorical",
            lambda g, n, f: g.choice(_CATEGORIES, size=(n, f), p=_SHARES),
            "4 categories, shares 0.55/0.25/0.15/0.05",
        ),
        DataKind(
            "embedding",
            "vector",
            lambda g, n, f: [g.normal(size=(n, EMBEDDING_DIM)) @ _MIXER.T for _ in range(f)],
            f"{EMBEDDING_DIM}-dim Gaussian, AR(1) correlation 0.8",
        ),
    ]
}


@dataclass(frozen=True)
class Sizes:
    """How many windows, and the shape of each: ``features`` per window (one correction family),
    ``reference`` and ``current`` rows. Distances with a threshold take ``threshold_rows`` on
    both sides instead (by default their spec's, the size their threshold is documented for)."""

    windows: int
    features: int = 5
    reference: int = 200
    current: int = 100
    # rows a side for a distance with a threshold; None: its documented size (threshold_rows)
    threshold_rows: int | None = None


@dataclass(frozen=True)
class Case:
    """A registry detector with parameters, on one kind of data."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    data: str = "normal"

    @property
    def spec(self) -> DetectorSpec:
        return REGISTRY[self.name]

    @property
    def by_threshold(self) -> bool:
        """Whether the detector decides by a distance threshold (no p-value) in this case."""
        return self.spec.threshold_rows is not None and not self.params.get("n_permutations")

    @property
    def id(self) -> str:
        shown = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}[{shown}]-{self.data}" if shown else f"{self.name}-{self.data}"


def cases(registry: dict[str, DetectorSpec] | None = None) -> list[Case]:
    """Every registry detector on every kind of data its column kinds take; a distance that can
    also run a permutation test (``n_permutations``) is calibrated that way too, with "auto"."""
    found: list[Case] = []
    for name, spec in sorted((registry or REGISTRY).items()):
        variants: list[dict[str, Any]] = [{}]
        if spec.threshold_rows is not None and "n_permutations" in spec.parameters():
            variants.append({"n_permutations": "auto"})
        if "numeric" in spec.kinds and "ties" in spec.parameters():  # Anderson-Darling on ties
            variants.append({"ties": "permutation"})
        for params in variants:
            for kind in DATA_KINDS.values():
                if kind.column_kind in spec.kinds:
                    found.append(Case(name, params, kind.name))
    return found


def bound(alpha: float, windows: int) -> float:
    """The largest flagged share a calibrated detector may show: alpha plus two binomial
    standard errors."""
    return alpha + 2.0 * math.sqrt(alpha * (1.0 - alpha) / windows)


def chance_above_bound(alpha: float, windows: int) -> float:
    """The probability that a detector whose false-alarm rate is exactly alpha shows a flagged
    share above :func:`bound` over ``windows`` independent windows (exact binomial tail)."""
    from scipy import stats

    limit = math.floor(bound(alpha, windows) * windows + 1e-9)
    return float(stats.binom.sf(limit, windows, alpha))


def _slice(result: DriftResult, start: int, stop: int) -> DriftResult:
    """The features ``start:stop`` of a per-feature result (what one window's call gives)."""
    return replace(
        result,
        features=result.features[start:stop],
        statistic=result.statistic[start:stop],
        p_value=result.p_value[start:stop],
        p_adjusted=result.p_adjusted[start:stop],
        drift=result.drift[start:stop],
        n_reference=result.n_reference[start:stop],
        n_current=result.n_current[start:stop],
        extra={},
    )


def _draws(detector: Any) -> int:
    """How many permutations a detector draws per window (0: its p-values are a function of
    each feature's values alone)."""
    inner = detector.make() if hasattr(detector, "make") else detector
    return int(inner.permutations()) if hasattr(inner, "permutations") else 0


def _configuration(detector: Any) -> str:
    """What decides a detector's p-values apart from alpha: its parameters without alpha and
    the permutations it draws ("auto" resolves from alpha and the family)."""
    inner = detector.make() if hasattr(detector, "make") else detector
    params = {k: v for k, v in inner.get_params().items() if k != "alpha"}
    return repr((sorted(params.items()), _draws(detector)))


def window_results(
    case: Case, alpha: float, sizes: Sizes, seed: int, batched: bool = True
) -> list[list[DriftResult]]:
    """Each window's results (one per call the service would make), detectors built for
    ``alpha``; the same seed draws the same windows whatever ``alpha``."""
    spec, kind = case.spec, DATA_KINDS[case.data]
    if case.by_threshold:
        n_ref = n_cur = int(sizes.threshold_rows or spec.threshold_rows or 0)
    else:
        n_ref, n_cur = sizes.reference, sizes.current
    family = family_size(sizes.features, CORRECTION)
    rng = np.random.default_rng(seed)

    def make() -> Any:
        return build(case.name, case.params, device="cpu", alpha=alpha, family_size=family)

    # the same windows whether they are scored together or one by one
    windows = [
        (kind.draw(rng, n_ref, sizes.features), kind.draw(rng, n_cur, sizes.features))
        for _ in range(sizes.windows)
    ]
    if not spec.multivariate and batched:
        # window w's features are columns w * features ... (w + 1) * features - 1 of one call
        ref = np.concatenate([r for r, _ in windows], axis=1)
        result = make().fit(ref).score(np.concatenate([c for _, c in windows], axis=1))
        # permutations are drawn per call from the window's values: one call for all windows
        # would draw one set for them all, so then each window gets its own call after all
        if not np.any(result.extra.get("n_permutations", 0)):
            f = sizes.features
            return [[_slice(result, w * f, (w + 1) * f)] for w in range(sizes.windows)]
    return [[make().fit(ref).score(cur)] for ref, cur in windows]


def flagged_shares(
    case: Case, alphas: Sequence[float], sizes: Sizes, seed: int
) -> dict[float, float]:
    """The share of ``sizes.windows`` exchangeable windows the service would flag, per alpha.

    Detectors whose p-values do not depend on alpha (all but those that size their
    permutations by it) are scored once and decided at each alpha."""
    shares: dict[float, float] = {}
    scored: dict[str, list[list[DriftResult]]] = {}
    for alpha in alphas:
        key = _configuration(
            build(
                case.name,
                case.params,
                device="cpu",
                alpha=alpha,
                family_size=family_size(sizes.features, CORRECTION),
            )
        )
        if key not in scored:
            scored[key] = window_results(case, alpha, sizes, seed)
        flags = [
            window_verdict(results, alpha=alpha, correction=CORRECTION).flagged
            for results in scored[key]
        ]
        shares[alpha] = float(np.mean(flags))
    return shares


def correlated_numeric(g: np.random.Generator, n: int, f: int) -> np.ndarray:
    """``f`` numeric columns, neighbours correlated 0.8 (AR(1)), as the pixels of an image or
    the measurements of one sample are: the joint stage's test sees them together."""
    return g.normal(size=(n, f)) @ _embedding_mixer(f).T


def default_monitor_shares(
    draw: Draw, alphas: Sequence[float], sizes: Sizes, seed: int, share: float = 0.1
) -> dict[float, float]:
    """The share of exchangeable windows the default monitor flags, per alpha: KS and the
    variance-weighted KS, Cauchy-combined, on every numeric column and the joint stage (the
    Fourier-feature MMD at three bandwidths, the Mahalanobis-distance test and KS on the top
    principal components, Bonferroni-combined, over the standardized columns) in one weighted
    Benjamini-Hochberg family (:mod:`detectors.joint`), as the service runs them (the test
    checks that the service's defaults are these)."""
    from detectors.joint import BlockTest, Bonferroni, marginal_family_size
    from detectors.multivariate.fourier_mmd import FourierMMD
    from detectors.multivariate.mahalanobis import MahalanobisTest
    from detectors.multivariate.projected_ks import ProjectedKSTest
    from detectors.univariate.weighted_ks import KSWeightedKSTest

    shares: dict[float, float] = {}
    for alpha in alphas:
        rng = np.random.default_rng(seed)
        flags = []
        for _ in range(sizes.windows):
            ref, cur = (
                draw(rng, sizes.reference, sizes.features),
                draw(rng, sizes.current, sizes.features),
            )
            marginal = KSWeightedKSTest(device="cpu", alpha=alpha, correction="none")
            per_feature = marginal.fit(ref).score(cur)
            tests = [
                FourierMMD(device="cpu", alpha=alpha),
                MahalanobisTest(device="cpu", alpha=alpha),
                ProjectedKSTest(device="cpu", alpha=alpha),
            ]
            combined = Bonferroni(tests, alpha=alpha)
            joint = BlockTest(combined, max_rows=10_000).fit(ref).score(cur)
            verdict = window_verdict(
                [per_feature], alpha=alpha, correction=CORRECTION, joint=[joint], share=share
            )
            flags.append(verdict.flagged)
        shares[alpha] = float(np.mean(flags))
    # the per-feature test draws no permutations: its family size is moot
    assert marginal_family_size(sizes.features, share) >= sizes.features
    return shares
