"""Upper tail of the limiting Anderson-Darling distribution, without a floor.

Under the null, the two-sample statistic ``A2akN`` tends to ``A = sum_j Z_j^2 / (j (j + 1))``
with independent standard normal ``Z_j`` (Anderson and Darling 1952, the eigenvalues of the
Brownian bridge weighted by ``1 / (t (1 - t))``): mean 1, variance ``2 (pi^2 - 9) / 3``.
Scholz and Stephens' table (what scipy's ``anderson_ksamp`` interpolates) holds quantiles of
this limit for probabilities 0.25 to 0.001 only, so scipy caps its p-values to that range; a
feature tested among 50 under Benjamini-Hochberg needs ``p < 0.05 / 50 = 0.001`` to be flagged
alone, which the cap never gives.

Here the tail is computed from the eigenvalues, by Imhof's integral (1961) for every point of a
grid at once, once per process (about 0.1 s), and interpolated by a monotone cubic (PCHIP) in
``log sf``;
the integral's absolute accuracy (about 1e-13) is small beside the grid's smallest p-value,
5e-10. Past the grid, the leading term of the tail, ``sqrt(3) P(chi2_1 > 2 x)`` (the largest
eigenvalue is 1/2, and the product of ``(1 - 2 lambda_j)^(-1/2)`` over the others is
``sqrt(3)``), scaled to meet the grid's end: the ratio of the tail to that term moves by about
``0.3 / x``, so a p-value below 5e-10 is within about 1% (such p-values decide nothing: a
correction over 10,000 features at alpha 0.01 stops at 1e-6).

>>> round(float(limit_sf(np.array([2.492]))[0]), 4)  # the 5% point of Anderson-Darling 1954
0.05
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import interpolate, special

MEAN = 1.0
VARIANCE = 2.0 * (math.pi**2 - 9.0) / 3.0
# eigenvalues kept; the rest (sum 1 / (J + 1), variance below 1e-7) enter as their mean
_TERMS = 200
# grid of the table (x up to 20, p down to 5e-10): the monotone cubic of log sf on this step
# is within 1e-6 relative of the integral between grid points from x = 1 (p = 0.36), 1e-4 below
_GRID = np.linspace(0.0, 20.0, 401)[1:]
# Imhof's integral by the trapezoidal rule on [0, _U_MAX] (the integrand is analytic and
# decays below 1e-16 by then): within 1e-13 absolute of scipy's adaptive quadrature, 50x faster
_U_STEP, _U_MAX = 0.1, 1200.0


def eigenvalues() -> np.ndarray:
    j = np.arange(1, _TERMS + 1, dtype=np.float64)
    return 1.0 / (j * (j + 1.0))


def imhof(x: np.ndarray, weights: np.ndarray, shift: float) -> np.ndarray:
    """``P(sum w Z^2 + shift > x)`` for every x at once (Imhof 1961, eq. 3.2): the integrand
    ``sin(theta(u)) / (u rho(u))`` by the trapezoidal rule, its value at ``u = 0`` being
    ``(sum w - t) / 2``."""
    t = np.asarray(x, dtype=np.float64) - shift
    u = np.arange(_U_STEP, _U_MAX, _U_STEP)
    wu = np.outer(u, weights)
    theta = 0.5 * np.arctan(wu).sum(axis=1)
    damping = 1.0 / (u * np.exp(0.25 * np.log1p(wu * wu).sum(axis=1)))
    values = np.sin(theta[None, :] - 0.5 * t[:, None] * u[None, :]) @ damping
    integral = _U_STEP * (values + 0.25 * (weights.sum() - t))
    return np.clip(0.5 + integral / math.pi, 0.0, 1.0)


@functools.cache
def _table() -> tuple[interpolate.PchipInterpolator, float, float]:
    """The interpolant of ``log sf`` on the grid, and the scale and last point of the tail's
    leading term (so that it meets the grid's last value)."""
    log_sf = np.log(imhof(_GRID, eigenvalues(), 1.0 / (_TERMS + 1)))
    last = float(_GRID[-1])
    scale = float(log_sf[-1]) - _leading_log_sf(np.array([last]))[0]
    return interpolate.PchipInterpolator(_GRID, log_sf), scale, last


def _leading_log_sf(x: np.ndarray) -> np.ndarray:
    """``log(sqrt(3) P(chi2_1 > 2 x))``, the tail's leading term."""
    return 0.5 * math.log(3.0) + np.log(special.erfc(np.sqrt(x)))


def limit_sf(x: np.ndarray) -> np.ndarray:
    """``P(A > x)`` for the limiting distribution ``A``, elementwise (1 below the grid's first
    point, 0.05, where the tail is 1 to far more digits than a float holds)."""
    x = np.asarray(x, dtype=np.float64)
    spline, scale, last = _table()
    out = np.ones_like(x)
    inside = (x > _GRID[0]) & (x <= last)
    out[inside] = np.exp(np.minimum(spline(x[inside]), 0.0))
    beyond = x > last
    if beyond.any():
        with np.errstate(divide="ignore"):
            out[beyond] = np.exp(_leading_log_sf(x[beyond]) + scale)
    return out


def p_value(standardised: np.ndarray) -> np.ndarray:
    """P-value of the standardised statistic ``(A2akN - 1) / sigma_N`` (scipy's ``statistic``
    of ``anderson_ksamp``): the limit's tail at ``1 + sqrt(VARIANCE) * standardised``, i.e.
    the statistic rescaled to the limit's variance (Scholz and Stephens' own finite-sample
    adjustment, which is what their table's quantiles are of)."""
    return limit_sf(MEAN + math.sqrt(VARIANCE) * np.asarray(standardised, dtype=np.float64))
