"""Multiple-testing corrections across features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Correction = Literal["none", "bonferroni", "bh"]
# the names alone, without numpy: a monitor's configuration is checked against them by commands
# that compute nothing
CORRECTIONS: tuple[str, ...] = ("none", "bonferroni", "bh")


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values; compare them with the level alpha.

    ``bh`` is Benjamini-Hochberg (step-up, controls the false discovery rate), as
    ``scipy.stats.false_discovery_control(p, method="bh")``. NaN p-values (a feature that could
    not be tested) stay NaN and do not count towards the number of tests.

    >>> import numpy as np
    >>> adjust(np.array([0.01, 0.04, 0.03]), "bh").round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    import numpy as np

    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    valid = ~np.isnan(p)
    m = int(valid.sum())
    if m == 0:
        return out
    pv = p[valid]
    if method == "none":
        adjusted = pv
    elif method == "bonferroni":
        adjusted = np.minimum(pv * m, 1.0)
    elif method == "bh":
        order = np.argsort(pv)
        ranked = pv[order] * m / np.arange(1, m + 1)
        # step-up: each adjusted value is the minimum over the larger ranks
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty_like(pv)
        adjusted[order] = np.minimum(ranked, 1.0)
    else:
        raise ValueError(f"unknown correction {method!r}; choose one of {CORRECTIONS}")
    out[valid] = adjusted
    return out
