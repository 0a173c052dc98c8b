"""Which label-free estimator suits a model: a backtest on its own labelled history.

No estimator is best everywhere: CBPE is right when ``P(label | score)`` carries over from the
reference, the importance-weighted variant when the inputs move and the labels follow them,
at the price of a noisier calibration. A model's past windows whose labels arrived tell which
holds for *that* model: each past window is estimated from the rows before it, as it would have
been then, and compared with the accuracy its labels realized. The estimator with the lowest
mean absolute error is chosen; with too little history for a fair comparison, CBPE.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(size=3000)
>>> y = (rng.uniform(size=3000) < p).astype(int)
>>> result = backtest(p, y, None, [0, 1], window_rows=500, min_reference=500)
>>> result.chosen, result.windows, round(result.errors["cbpe"], 2)
('cbpe', 5, 0.02)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.performance.calibration import check_probabilities, class_index
from detectors.performance.cbpe import CBPE
from detectors.performance.expected import Decisions
from detectors.performance.importance import ImportanceWeightedCBPE

ESTIMATORS = ("cbpe", "iw-cbpe")
DEFAULT = "cbpe"


@dataclass(frozen=True)
class Backtest:
    """The estimator chosen, each candidate's mean absolute error of estimated accuracy over
    the backtest windows, how many windows there were, and why the choice fell so."""

    chosen: str
    errors: dict[str, float] = field(default_factory=dict)
    windows: int = 0
    reason: str = ""

    @property
    def error(self) -> float | None:
        """The chosen estimator's backtest error, None without a backtest."""
        return self.errors.get(self.chosen)


def build(name: str, *, threshold: float = 0.5, metrics: Sequence[str] = ("accuracy",)) -> Any:
    """A fresh estimator by name (``"cbpe"`` or ``"iw-cbpe"``)."""
    if name == "cbpe":
        return CBPE(metrics=metrics, threshold=threshold)
    if name == "iw-cbpe":
        return ImportanceWeightedCBPE(metrics=metrics, threshold=threshold)
    raise ValueError(f"unknown estimator {name!r}; choose from {list(ESTIMATORS)}")


def fit_estimate(
    name: str,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    current: tuple[np.ndarray, np.ndarray | None],
    classes: Sequence[Any],
    *,
    threshold: float = 0.5,
    metrics: Sequence[str] = ("accuracy",),
) -> Any:
    """Fit ``name`` on ``reference`` (probabilities, labels, features or None) and estimate
    ``current`` (probabilities, features or None); the features matter to ``iw-cbpe`` only."""
    estimator = build(name, threshold=threshold, metrics=metrics)
    probabilities, labels, features = reference
    if name == "iw-cbpe":
        estimator.fit(probabilities, labels, features, classes=classes)
        return estimator.estimate(current[0], current[1])
    estimator.fit(probabilities, labels, classes=classes)
    return estimator.estimate(current[0])


def backtest(
    probabilities: Any,
    labels: Any,
    features: Any,
    classes: Sequence[Any],
    *,
    window_rows: int,
    min_reference: int,
    max_windows: int = 5,
    threshold: float = 0.5,
) -> Backtest:
    """Backtest the estimators on labelled rows in time order (oldest first).

    The last ``max_windows`` runs of ``window_rows`` rows are the past windows; each is
    estimated by every estimator fitted on all rows before it (at least ``min_reference``,
    with every class present). ``iw-cbpe`` takes part only with ``features`` (numeric, one
    row per probability row). Fewer than two windows: no backtest, CBPE.
    """
    array = check_probabilities(probabilities, name="probabilities", n_classes=len(classes))
    _, label_index = class_index(labels, array.shape[1], classes)
    n = len(array)
    candidates = ESTIMATORS if features is not None else (DEFAULT,)
    starts = [
        start
        for start in range(n - window_rows, min_reference - 1, -window_rows)
        if np.unique(label_index[:start]).size == len(classes)
    ][:max_windows]
    if window_rows < 1 or len(starts) < 2:
        return Backtest(
            DEFAULT,
            reason=f"too little labelled history for a backtest ({n} rows; two windows of "
            f"{window_rows} after {min_reference} rows needed)",
        )
    feats = None if features is None else np.asarray(features, dtype=np.float64)
    errors: dict[str, list[float]] = {name: [] for name in candidates}
    for start in starts:
        stop = start + window_rows
        window = array[start:stop]
        decisions = Decisions.of(window, threshold, ())
        realized = float(np.mean(decisions.predicted == label_index[start:stop]))
        for name in candidates:
            estimate = fit_estimate(
                name,
                (array[:start], label_index[:start], None if feats is None else feats[:start]),
                (window, None if feats is None else feats[start:stop]),
                list(range(len(classes))),
                threshold=threshold,
            )
            errors[name].append(abs(estimate["accuracy"].value - realized))
    mean = {name: float(np.mean(e)) for name, e in errors.items()}
    chosen = min(candidates, key=lambda name: (mean[name], name != DEFAULT))
    others = ", ".join(f"{k} {v:.3f}" for k, v in mean.items() if k != chosen)
    reason = f"lowest accuracy error over {len(starts)} past windows" + (
        f" (vs {others})" if others else " (the only candidate: no numeric features)"
    )
    return Backtest(chosen, mean, len(starts), reason)
