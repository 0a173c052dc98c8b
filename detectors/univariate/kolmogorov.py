"""``scipy.stats.kstwo.sf`` for all features at once (the KS asymptotic p-value).

scipy computes the two-sided one-sample KS survival function one value at a time
(``scipy.stats._ksstats._kolmogn``, Simard and L'Ecuyer's choice of method), and for a large
statistic it calls ``smirnov(n, x)``, an exact sum of up to ``n`` terms per value: at
n = 10,000 about 7 ms a feature. Here the same branches run batched:

- the closed forms (Ruben and Gambino, 1982) at both ends and the Pelz-Good series, as scipy;
- ``smirnov``: the same exact sum (Birnbaum and Tingey, 1951), all features' terms together in
  cache-sized blocks (numpy on the CPU, torch on other devices). scipy sums in double-double;
  here each term is a binomial probability in Loader's saddle-point form (Loader, 2000:
  ``stirlerr``), whose logarithm carries an absolute error of ~1e-16 * n * x (``lgamma(n + 1)``
  alone would lose 1e-9 at n = 10^6);
- the two cases scipy answers with a Durbin matrix power or Pomeranz's recursion (n <= 140 and
  a middling statistic, or a statistic so small that the p-value is ~1) are left to scipy on
  just those values: they are rare above n = 140 and cheap below it.

The tests hold the result to scipy's within 1e-10 relative (or 1e-300 absolute).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from scipy import stats

_MIN_LOG = -7.08396418532264106224e2  # cephes MINLOG: smirnov's sf underflows below it
_MAX_EXACT_N = 1_000_000  # scipy's SMIRNOV_MAX_COMPUTE_N: beyond it, an approximation
# features x terms of the exact sum held at once (256 KiB a block: it stays in the cache)
_TERMS_PER_BLOCK = 1 << 15
# Loader's stirlerr(k) = log(k!) - log(sqrt(2 pi k) (k/e)^k): exact table to 15, series above
_STIRLERR = [0.0] + [
    math.lgamma(k + 1) - (k + 0.5) * math.log(k) + k - 0.5 * math.log(2 * math.pi)
    for k in range(1, 16)
]


def _stirlerr(k: np.ndarray) -> np.ndarray:
    small = np.asarray(_STIRLERR)[np.minimum(k, 15).astype(np.int64)]
    k2 = np.maximum(k, 16) ** 2
    series = (
        1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * k2)) / k2) / k2) / k2
    ) / np.maximum(k, 16)
    return np.where(k <= 15, small, series)


@functools.lru_cache(maxsize=4)
def _term_constants(n: float) -> np.ndarray:
    """The x-free part of the log of each term v = 1 .. n - 1 of the sum for size ``n``.

    The Stirling corrections and log(n sqrt(n / (2 pi v (n-v)))). In numpy, once per size
    (windows of one size share it): torch split these ~n-long operations over its threads,
    which on a busy machine cost more than the work.
    """
    v = np.arange(1, int(n), dtype=np.float64)
    rest = n - v
    constants = _stirlerr(np.asarray(n)) - _stirlerr(v) - _stirlerr(rest)
    constants += np.log(np.sqrt(n / (2 * math.pi * v * rest)) * n)
    constants.flags.writeable = False
    return constants


def _floor_product(n: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``floor(n * x)`` exactly (Dekker's product), and whether ``n * x`` is an integer."""
    p = n * x

    def split(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = 134217729.0 * a
        high = c - (c - a)
        return high, a - high

    nh, nl = split(n)
    xh, xl = split(x)
    error = ((nh * xh - p) + nh * xl + nl * xh) + nl * xl  # p + error == n * x exactly
    floor = torch.floor(p)
    integral_p = floor == p
    floor = torch.where(integral_p & (error < 0), floor - 1, floor)
    return floor, integral_p & (error == 0)


def smirnov_sf(n: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``scipy.special.smirnov(n, x)``: P(D+_n >= x), for 1/n < x < 1 - 1/n (float64 tensors)."""
    nxfl, integral = _floor_product(n, x)
    out = torch.zeros_like(x)
    tiny = (nxfl == 0) | ((nxfl == 1) & integral)
    out = torch.where(tiny, 1 - x * torch.exp((n - 1) * torch.log1p(x)), out)
    big = nxfl >= n - 1
    out = torch.where(big, torch.exp(n * torch.log1p(-x)), out)
    huge_n = n > _MAX_EXACT_N
    log_p = -((6 * n * x + 1) ** 2) / 18 / n
    approx = torch.where(log_p < -math.log(2), torch.exp(log_p), 1 + torch.expm1(log_p))
    out = torch.where(huge_n, approx, out)
    summed = ~(tiny | big | huge_n) & (-2 * n * x * x >= _MIN_LOG)
    if summed.any():
        out[summed] = _smirnov_sum(n[summed], x[summed], nxfl[summed])
    return out.where(-2 * n * x * x >= _MIN_LOG, torch.zeros_like(out)).clamp(0.0, 1.0)


def _smirnov_sum(n: torch.Tensor, x: torch.Tensor, nxfl: torch.Tensor) -> torch.Tensor:
    """x * sum over v < n - floor(nx) of C(n, v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v).

    Features of one size share every part of a term that does not depend on x (the Stirling
    corrections and the square root), computed once per size: features mostly share one.
    """
    total = torch.zeros_like(x)
    for size in torch.unique(n).tolist():
        members = n == size
        total[members] = _smirnov_sum_of_size(float(size), x[members], nxfl[members])
    return total


def _smirnov_sum_of_size(n: float, x: torch.Tensor, nxfl: torch.Tensor) -> torch.Tensor:
    """The sum for features of one size, in blocks of terms that stay in the cache.

    Equal statistics (common: a statistic is a ratio of counts) are summed once. This sum is
    most of the asymptotic p-value's cost; on the CPU it runs in numpy, one thread: torch
    splits each operation over its threads, which on a busy machine waited ~10 ms per
    operation for a descheduled thread (0.3-1 s for 200 features instead of 20 ms).
    """
    x, inverse = torch.unique(x, return_inverse=True)
    nxfl = torch.zeros_like(x).scatter_(0, inverse, nxfl)  # equal x, equal floor(n x)
    last = n - nxfl - 1  # the last v, per feature
    head = torch.exp(n * torch.log1p(-x)) / x  # v = 0: (1 - x)^n / x
    on_cpu = x.device.type == "cpu"
    lib: Any = np if on_cpu else torch  # the same calls below, on numpy arrays or tensors
    place: dict[str, Any] = {} if on_cpu else {"device": x.device}

    def as_lib(a: np.ndarray | torch.Tensor) -> Any:
        if isinstance(a, torch.Tensor):
            return a.numpy() if on_cpu else a
        return a if on_cpu else torch.tensor(a, device=x.device)  # a copy (a may be read-only)

    nx, last_ = as_lib((n * x)[:, None]), as_lib(last[:, None])
    most, fewest = int(last.max().item()), int(last.min().item())
    width = max(1, min(_TERMS_PER_BLOCK // len(x), most))
    # C(n, v) a^v b^(n-v), a = x + v/n, b = 1 - a, as a binomial probability (Loader):
    # n log n - v log v - (n-v) log(n-v) + v log a + (n-v) log b, with the n log n terms
    # taken out exactly, is v log1p(nx/v) + (n-v) log1p(-nx/(n-v)); what remains cancels
    # to ~1e-16 * nx absolute (1e-11 at n = 10^6). The Stirling corrections and
    # sqrt(n / (2 pi v (n-v))) depend on v only: one row for all features, once per size.
    v_all = np.arange(1, most + 1, dtype=np.float64)
    v_all, rest_all, constant_all = (
        as_lib(a) for a in (v_all, n - v_all, _term_constants(n)[:most])
    )
    up = lib.empty((len(x), width), dtype=lib.float64, **place)
    down = lib.empty((len(x), width), dtype=lib.float64, **place)
    total = lib.zeros(len(x), dtype=lib.float64, **place)
    for start in range(0, most, width):
        v, rest, constant = (t[start : start + width] for t in (v_all, rest_all, constant_all))
        a, b = up[:, : len(v)], down[:, : len(v)]
        with np.errstate(divide="ignore", invalid="ignore"):
            lib.multiply(lib.log1p(lib.divide(nx, v, out=a), out=a), v, out=a)
            lib.divide(nx, rest, out=b)
            lib.multiply(lib.log1p(lib.negative(b, out=b), out=b), rest, out=b)
            lib.exp(lib.add(lib.add(a, b, out=a), constant, out=a), out=a)
            lib.divide(a, lib.add(nx, v, out=b), out=a)  # ... divided by a
        if start + len(v) > fewest:  # past a feature's last v the logs are not finite
            a = lib.where(v <= last_, a, 0.0)
        total += a.sum(1)
    return (x * (head + torch.as_tensor(total)))[inverse]


def _pelz_good_cdf(n: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """scipy's ``_kolmogn_PelzGood``: P(D_n <= x), for 0 < x < 1 with sqrt(n) x > 0.04."""
    pi2, pi4, pi6 = math.pi**2, math.pi**4, math.pi**6
    z = torch.sqrt(n) * x
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    q = torch.exp(-pi2 / 8 / z2)
    k1a, k1b = -z2, pi2 / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16
    k3d = pi6 * (5 - 30 * z2) / 64
    k3c = pi4 * (-60 * z2 + 212 * z4) / 16
    k3b = pi2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z**8
    max_k = torch.ceil(16 * z / math.pi)
    sums = [torch.zeros_like(z) for _ in range(4)]
    for k in range(int(max_k.max().item()), 0, -1):  # Horner over odd m = 2k - 1, as scipy
        m2 = float((2 * k - 1) ** 2)
        coefficients = (
            torch.ones_like(z),
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m2**2,
            k3a + k3b * m2 + k3c * m2**2 + k3d * m2**3,
        )
        active = k <= max_k
        q_power = q ** (8 * k)
        pairs = zip(sums, coefficients, strict=True)
        sums = [torch.where(active, s * q_power + c, s) for s, c in pairs]
    scale = math.sqrt(2 * math.pi) * q
    divisors = (z, 6 * z4, 72 * z**7, 6480 * z**10)
    sums = [s * scale / d for s, d in zip(sums, divisors, strict=True)]
    q = torch.exp(-pi2 / 2 / z2)
    ks = torch.arange(1, int(max_k.max().item()) + 1, dtype=z.dtype, device=z.device)[None, :]
    kept = ks <= max_k[:, None]
    k2q = torch.where(kept, ks**2 * q[:, None] ** (ks**2), torch.zeros_like(ks))
    sums[2] = sums[2] + k2q.sum(dim=1) * pi2 * math.sqrt(2 * math.pi) / (-36 * z3)
    sqrt3z = math.sqrt(3) * z[:, None]
    extra = ((sqrt3z + math.pi * ks) * (sqrt3z - math.pi * ks) * k2q).sum(dim=1)
    sums[3] = sums[3] + extra * pi2 * math.sqrt(2 * math.pi) / (216 * z6)
    return sums[0] + sums[1] / n**0.5 + sums[2] / n + sums[3] / n**1.5


def kstwo_sf(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``scipy.stats.kstwo.sf(x, n)`` elementwise (float64; n positive integers)."""
    x, n = x.to(torch.float64), n.to(torch.float64)
    out = torch.full_like(x, float("nan"))
    t = n * x
    done = torch.zeros_like(x, dtype=torch.bool)

    def settle(where: torch.Tensor, value: torch.Tensor | float) -> None:
        nonlocal out, done
        where = where & ~done
        out = torch.where(where, value, out)
        done = done | where

    settle(x >= 1, 0.0)
    settle(x <= 0, 1.0)
    settle(t <= 0.5, 1.0)
    # Ruben-Gambino: P(D_n <= x) = n!/n^n (2t - 1)^n for t <= 1 (scipy's product up to n = 140)
    i = torch.arange(1, 141, dtype=x.dtype, device=x.device)[None, :]
    factors = torch.where(i <= n[:, None], i / n[:, None] * (2 * t[:, None] - 1), 1.0)
    log_ratio = 0.5 * torch.log(n) - n + 0.5 * math.log(2 * math.pi) + _stirling_tail(n)
    large = torch.exp(log_ratio + n * torch.log((2 * t - 1).clamp(min=1e-300)))
    settle(t <= 1, 1 - torch.where(n <= 140, factors.prod(dim=1), large))
    settle(t >= n - 1, 2 * torch.exp(n * torch.log1p(-x.clamp(max=1 - 1e-16))))
    squared = t * x
    two_smirnov = (n <= 140) & (squared > 4) | (n > 140) & (squared >= 2.2) | (x >= 0.5)
    pending = two_smirnov & ~done  # (scipy's "0 when nx^2 >= 370" is smirnov's underflow)
    if pending.any():
        values = torch.zeros_like(x)
        values[pending] = 2 * smirnov_sf(n[pending], x[pending])
        settle(pending, values.clamp(0.0, 1.0))
    pelz = ~done & (n > 140) & ((n > 100_000) | (n * x**1.5 > 1.4))
    if pelz.any():
        values = torch.zeros_like(x)
        values[pelz] = 1 - _pelz_good_cdf(n[pelz], x[pelz])
        settle(pelz, values)
    rest = ~done  # Durbin's matrix or Pomeranz's recursion: scipy's own code
    if rest.any():
        found = stats.kstwo.sf(x[rest].cpu().numpy(), n[rest].cpu().numpy())
        values = torch.zeros_like(x)
        values[rest] = torch.as_tensor(np.asarray(found, dtype=np.float64), device=x.device)
        settle(rest, values)
    return out.clamp(0.0, 1.0)


def _stirling_tail(n: torch.Tensor) -> torch.Tensor:
    """scipy's series part of log(n!/n^n) (``_log_nfactorial_div_n_pow_n``)."""
    coefficients = (
        -2.955065359477124183e-2,
        6.4102564102564102564e-3,
        -1.9175269175269175269e-3,
        8.4175084175084175084e-4,
        -5.952380952380952381e-4,
        7.9365079365079365079e-4,
        -2.7777777777777777778e-3,
        8.3333333333333333333e-2,
    )
    r = 1.0 / n
    polynomial = torch.zeros_like(n)
    for c in coefficients:
        polynomial = polynomial * (r / n) + c
    return r * polynomial
