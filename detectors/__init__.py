"""Pure computation: drift tests and multiple-testing corrections, batched in PyTorch.

Knows nothing about HTTP or SQL. Results are numpy arrays and Python numbers.

>>> from detectors import KSTest
>>> import numpy as np
>>> res = KSTest(device="cpu").fit(np.zeros((10, 1))).score(np.zeros((10, 1)))
>>> float(res.p_value[0])
1.0
"""

from detectors.categorical.chisquare import ChiSquareTest
from detectors.correction import CORRECTIONS, adjust
from detectors.multivariate.projected_ks import ProjectedKSTest
from detectors.registry import REGISTRY, DetectorSpec
from detectors.result import DriftResult
from detectors.univariate.ks import KSTest

__all__ = [
    "CORRECTIONS",
    "REGISTRY",
    "ChiSquareTest",
    "DetectorSpec",
    "DriftResult",
    "KSTest",
    "ProjectedKSTest",
    "adjust",
]
