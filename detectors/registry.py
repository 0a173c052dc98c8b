"""Config name to detector class, with the column kinds each one accepts.

A monitor's configuration is validated against this table when it is created, not when a job
runs at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.categorical.chisquare import ChiSquareTest
from detectors.multivariate.projected_ks import ProjectedKSTest
from detectors.univariate.ks import KSTest


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    cls: type[KSTest] | type[ChiSquareTest] | type[ProjectedKSTest]
    kinds: frozenset[str]
    description: str


REGISTRY: dict[str, DetectorSpec] = {
    "ks": DetectorSpec("ks", KSTest, frozenset({"numeric"}), "two-sample Kolmogorov-Smirnov"),
    "chi2": DetectorSpec(
        "chi2", ChiSquareTest, frozenset({"categorical"}), "chi-squared test of homogeneity"
    ),
    "ks-pca": DetectorSpec(
        "ks-pca",
        ProjectedKSTest,
        frozenset({"vector"}),
        "KS tests on the reference's top principal components (Bonferroni-combined)",
    ),
}
