"""Config name to detector class, with the column kinds each one accepts.

A monitor's configuration names a detector per column kind, with parameters; it is validated
against this table when the monitor is created, not when a job runs at 3 a.m.:
``check("psi", {"n_bins": 20}, kind="numeric")`` raises a ValueError that says what is wrong.

Univariate detectors test each column of their kind (``numeric``, ``categorical``); multivariate
ones give one verdict per ``vector`` feature (an embedding), run by
:class:`~detectors.multivariate.per_vector.PerVector`.

The table names each class by its module: a class (and torch, scipy, scikit-learn with it) is
imported only when a detector is built or its parameters are checked, so reading or validating
a configuration without parameters stays light.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

# set by the monitor itself (device from the settings, alpha and correction from the monitor,
# family_size from the number of features it corrects together)
_MANAGED = frozenset({"device", "alpha", "correction", "family_size"})


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    path: str  # "module:Class"
    kinds: frozenset[str]
    description: str
    multivariate: bool = False
    # A distance with a default threshold instead of a p-value is no test: its false-alarm rate
    # falls as windows grow. Its threshold is meant for windows of at least this many rows
    # (reference and current); None for a test with a p-value.
    threshold_rows: int | None = None

    @property
    def cls(self) -> type:
        """The detector's class, imported now: torch and scipy load with the first one."""
        module, name = self.path.split(":")
        found: type = getattr(importlib.import_module(module), name)
        return found

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The keyword-only constructor parameters a configuration may set."""
        signature = inspect.signature(self.cls)
        return {
            name: p
            for name, p in signature.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in _MANAGED
        }


def _spec(
    name: str,
    path: str,
    kinds: str,
    description: str,
    multivariate: bool = False,
    threshold_rows: int | None = None,
) -> DetectorSpec:
    return DetectorSpec(
        name,
        f"detectors.{path}",
        frozenset(kinds.split()),
        description,
        multivariate,
        threshold_rows,
    )


# Evidently's default thresholds (0.1), which the distances keep, suit windows of a thousand
# rows or more (README, Detectors); below, exchangeable windows exceed them often (PSI on 3 in
# 1,000 features of 500 vs 500 normal rows, Jensen-Shannon and Hellinger on 15). Wasserstein's
# needs three thousand: 0.1 reference sd was exceeded by 3.9% of normal features at 1,000 vs
# 1,000 rows, and 1.0-2.7% of 5-feature windows were still flagged at 2,000 (0-0.25% at 3,000;
# benchmarks/calibration.py, docs/calibration.md).
THRESHOLD_ROWS = 1000
WASSERSTEIN_THRESHOLD_ROWS = 3000


REGISTRY: dict[str, DetectorSpec] = {
    s.name: s
    for s in [
        _spec(
            "ks",
            "univariate.ks:KSTest",
            "numeric",
            "two-sample Kolmogorov-Smirnov (exact up to 10,000 rows)",
        ),
        _spec("cvm", "univariate.cvm:CVMTest", "numeric", "two-sample Cramér-von Mises"),
        _spec(
            "anderson",
            "univariate.anderson:AndersonDarlingTest",
            "numeric",
            "k-sample Anderson-Darling (tie-heavy columns by KS)",
        ),
        _spec(
            "anderson_ks",
            "univariate.anderson_ks:AndersonKSTest",
            "numeric",
            "Anderson-Darling and KS, Cauchy-combined (tie-heavy columns by KS)",
        ),
        _spec(
            "ks_weighted_ks",
            "univariate.weighted_ks:KSWeightedKSTest",
            "numeric",
            "KS and variance-weighted KS, Cauchy-combined (the numeric default)",
        ),
        _spec(
            "wasserstein",
            "univariate.wasserstein:WassersteinDistance",
            "numeric",
            "Wasserstein distance / ref. std",
            threshold_rows=WASSERSTEIN_THRESHOLD_ROWS,
        ),
        _spec(
            "psi",
            "univariate.binned:PSI",
            "numeric",
            "population stability index on reference quantile bins",
            threshold_rows=THRESHOLD_ROWS,
        ),
        _spec(
            "jensen_shannon",
            "univariate.binned:JensenShannon",
            "numeric",
            "Jensen-Shannon distance on bins",
            threshold_rows=THRESHOLD_ROWS,
        ),
        _spec(
            "hellinger",
            "univariate.binned:Hellinger",
            "numeric",
            "Hellinger distance on bins",
            threshold_rows=THRESHOLD_ROWS,
        ),
        _spec(
            "kl_divergence",
            "univariate.binned:KLDivergence",
            "numeric",
            "KL divergence on bins",
            threshold_rows=THRESHOLD_ROWS,
        ),
        _spec(
            "chi2",
            "categorical.chisquare:ChiSquareTest",
            "categorical",
            "chi-squared test of homogeneity",
        ),
        _spec(
            "psi_categorical",
            "categorical.distances:CategoricalPSI",
            "categorical",
            "PSI over categories",
            threshold_rows=THRESHOLD_ROWS,
        ),
        _spec(
            "jensen_shannon_categorical",
            "categorical.distances:CategoricalJensenShannon",
            "categorical",
            "Jensen-Shannon distance over categories",
            threshold_rows=THRESHOLD_ROWS,
        ),
        _spec(
            "tvd",
            "categorical.distances:TotalVariation",
            "categorical",
            "total variation distance over categories",
            threshold_rows=THRESHOLD_ROWS,
        ),
        _spec(
            "ks_pca",
            "multivariate.projected_ks:ProjectedKSTest",
            "vector",
            "KS on the reference's top principal components (Bonferroni-combined)",
            multivariate=True,
        ),
        _spec(
            "ks_mmd",
            "multivariate.ks_mmd:ComponentKSMMD",
            "vector",
            "KS on every component and an MMD on the whole vector, Simes-combined (default)",
            multivariate=True,
        ),
        _spec(
            "mmd",
            "multivariate.mmd:MMD",
            "vector",
            "RBF-kernel MMD, permutation p-value",
            multivariate=True,
        ),
        _spec(
            "fourier_mmd",
            "multivariate.fourier_mmd:FourierMMD",
            "vector",
            "RBF MMD on random Fourier features at 3 bandwidths, asymptotic p-value (linear time)",
            multivariate=True,
        ),
        _spec(
            "mahalanobis",
            "multivariate.mahalanobis:MahalanobisTest",
            "vector",
            "Anderson-Darling on the rows' Mahalanobis distances from the reference (shrunk"
            " covariance, leave-one-out)",
            multivariate=True,
        ),
        _spec(
            "linear_mmd",
            "multivariate.mmd:LinearMMD",
            "vector",
            "linear-time MMD for large windows",
            True,
        ),
        _spec(
            "energy",
            "multivariate.energy:EnergyDistance",
            "vector",
            "energy distance, permutation p-value",
            True,
        ),
        _spec(
            "classifier",
            "multivariate.classifier:ClassifierTest",
            "vector",
            "classifier two-sample test (CV AUC)",
            True,
        ),
    ]
}


# former names, still accepted so that stored monitor configurations load
ALIASES = {"ks-pca": "ks_pca"}


def canonical(name: str) -> str:
    """The registry name of ``name`` (itself, or what an old alias now reads).

    >>> canonical("ks-pca"), canonical("ks")
    ('ks_pca', 'ks')
    """
    return ALIASES.get(name, name)


def check(
    name: str, params: dict[str, Any] | None = None, *, kind: str | None = None
) -> DetectorSpec:
    """The spec of ``name`` after checking the kind and the parameters, or a ValueError."""
    spec = REGISTRY.get(canonical(name))
    if spec is None:
        raise ValueError(f"unknown detector {name!r}; known: {sorted(REGISTRY)}")
    if kind is not None and kind not in spec.kinds:
        raise ValueError(
            f"detector {name!r} does not accept {kind!r} columns (it takes {sorted(spec.kinds)})"
        )
    if not params:  # the defaults are valid: no need to import the class (torch, scipy)
        return spec
    allowed = spec.parameters()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"detector {name!r} has no parameter(s) {unknown}; it takes {sorted(allowed)}"
        )
    try:  # the constructor checks values (e.g. n_bins >= 2); building one is cheap
        spec.cls(device="cpu", **params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"detector {name!r}: {exc}") from exc
    return spec


def build(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    device: str = "auto",
    alpha: float = 0.05,
    family_size: int = 1,
    per_vector: bool = True,
) -> Any:
    """A detector ready to fit, with multiple-testing correction left to the caller.

    ``family_size`` is how many tests the caller corrects together
    (:func:`detectors.verdict.family_size`): detectors that draw permutations draw enough for
    their smallest p-value to pass that correction. Multivariate detectors come wrapped in
    :class:`PerVector` (one instance per vector feature) unless ``per_vector`` is false (the
    joint test over a monitor's numeric block is one instance over all its columns).
    """
    spec = check(name, params)
    kwargs: dict[str, Any] = dict(params or {}, device=device)
    accepted = inspect.signature(spec.cls).parameters
    if "alpha" in accepted:
        kwargs["alpha"] = alpha
    if "family_size" in accepted:
        kwargs["family_size"] = family_size
    if "correction" in accepted:
        kwargs["correction"] = "none"  # the monitor corrects across all its features together
    if spec.multivariate and per_vector:
        from detectors.multivariate.per_vector import PerVector

        return PerVector(lambda: spec.cls(**kwargs), alpha=alpha)
    return spec.cls(**kwargs)
