"""A change detector for error streams near the information limit: CUSUMs over a grid of rates.

The stream's pre-change behaviour is learnt from a burn-in (the first ``burn_in`` values after
a start or a reset); from then on each value becomes an indicator ``y`` and six Bernoulli
CUSUMs (Page, 1954) test the indicator's rate ``p0`` against a higher rate ``p1``, one CUSUM
per ``p1`` on a grid in log-odds (``logit(p1) = logit(p0) + d``, ``d`` = 0.5 ... 3). The largest
of them is the generalized likelihood ratio over the unknown post-change rate, taken on that
grid: a rate between two grid points loses at most ~8% of the per-value information
(Lorden, 1971; Siegmund, 1985, ch. II).

Indicators
    When the burn-in held only 0 and 1 (a classifier's errors) the values are the indicators.
    Otherwise (a regressor's absolute errors, losses) ``y = value > cut`` with ``cut`` the
    burn-in's ``quantile``: calibration then does not depend on the shape of the error
    distribution, which a Gaussian mean-shift CUSUM would assume (absolute errors are skewed,
    and a Gaussian threshold on them raises far more false alarms than it promises).

The pre-change rate
    ``p0`` is the indicators' mean over every value since the start (burn-in included), taken
    before each new value and raised by one standard error: a rate estimated from 1,000 values
    is off by ~10%, which would multiply the false alarms of a threshold set for the exact rate.

Threshold
    A CUSUM with threshold ``h`` raises a false alarm every ``e^h / KL(p0 || p1)`` values on
    average (Siegmund's approximation, ``KL`` the Kullback-Leibler divergence of one value); the
    six CUSUMs share ``false_alarms_per_10k`` equally (a union bound). The bound is loose: in
    simulation (``benchmarks/streaming.py``) the realised rate is several times below the
    target, so the target reads as a guarantee, not a forecast.

Default target
    0.03 false alarms per 10,000 values. Measured on 200 seeded streams per cell (rate 0.1 to
    0.3, or absolute errors whose mean triples; unchanged streams of 10,000 values): 0.1 gave
    a median delay of 66 values and an alarm on 1% of unchanged streams, 0.03 gave 74.5 and
    0.5% (0/1 errors; absolute errors 24 and none), 0.01 gave 82 and none. 0.03 keeps the
    delay within 80 values of a change (the information limit is ~60).
"""

from __future__ import annotations

import math
from typing import Any

# log-odds steps from p0 to the post-change rates watched
_STEPS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


class GLRConfig:
    """Parameters of :class:`CusumGLR` (checked here, as frouros's configs check theirs)."""

    def __init__(
        self, false_alarms_per_10k: float = 0.03, burn_in: int = 1000, quantile: float = 0.8
    ) -> None:
        if not 0.0 < false_alarms_per_10k <= 100.0:
            raise ValueError(
                f"false_alarms_per_10k must be in (0, 100], got {false_alarms_per_10k}"
            )
        if burn_in < 30:  # fewer values cannot estimate an error rate
            raise ValueError(f"burn_in must be at least 30, got {burn_in}")
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile}")
        self.false_alarms_per_10k = false_alarms_per_10k
        self.burn_in = burn_in
        self.quantile = quantile


class CusumGLR:
    """The detector itself, with frouros's interface: ``update(value=)``, ``drift``, ``reset()``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> errors = np.concatenate([rng.random(2000) < 0.1, rng.random(500) < 0.3])
    >>> detector = CusumGLR(config=GLRConfig())
    >>> for i, error in enumerate(errors):
    ...     detector.update(value=float(error))
    ...     if detector.drift:
    ...         break
    >>> i  # the rate rose at 2000
    2046
    """

    def __init__(self, config: GLRConfig) -> None:
        self.config = config
        self.drift = False
        self.warning = False  # no warning zone; kept for the common interface
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next ``burn_in`` values are learnt as the new normal."""
        self.drift = False
        self._burn: list[float] = []
        self._cut: float | None = None  # indicator: value > cut, once the burn-in is over
        self._count = 0
        self._hits = 0.0
        self._sums = [0.0] * len(_STEPS)

    def update(self, value: float, **_: Any) -> None:
        if self._cut is None:
            self._burn.append(float(value))
            if len(self._burn) >= self.config.burn_in:
                self._end_burn_in()
            self.drift = False
            return
        y = 1.0 if value > self._cut else 0.0
        p0 = self._baseline()
        log_target = math.log(len(_STEPS) * 10_000 / self.config.false_alarms_per_10k)
        logit0 = math.log(p0 / (1.0 - p0))
        drift = False
        for j, step in enumerate(_STEPS):
            p1 = 1.0 / (1.0 + math.exp(-(logit0 + step)))
            if_error, if_not = math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))
            self._sums[j] = max(0.0, self._sums[j] + (if_error if y else if_not))
            kl = -(p0 * if_error + (1.0 - p0) * if_not)  # KL(p0 || p1) of one value
            drift = drift or self._sums[j] >= log_target + math.log(kl)
        self._count += 1
        self._hits += y
        self.drift = drift

    def _end_burn_in(self) -> None:
        values = sorted(self._burn)
        if all(v in (0.0, 1.0) for v in values):
            self._cut = 0.5  # 0/1 errors are their own indicators
        else:  # the burn-in's quantile, linear interpolation (numpy's default)
            position = self.config.quantile * (len(values) - 1)
            low = math.floor(position)
            high = min(low + 1, len(values) - 1)
            self._cut = values[low] + (values[high] - values[low]) * (position - low)
        self._count = len(values)
        self._hits = float(sum(v > self._cut for v in values))
        self._burn = []

    def _baseline(self) -> float:
        """The pre-change rate: the mean so far plus one standard error, kept inside (0, 1)."""
        n = self._count
        mean = self._hits / n
        raised = mean + math.sqrt(mean * (1.0 - mean) / n)
        return min(max(raised, 0.5 / n), 1.0 - 0.5 / n)
