"""A binary classifier's own decision rule, read off its scores and its predicted labels.

A binary model predicts the positive class when its positive-class score reaches a cut that is
often not 0.5 (a cost-weighted or recall-tuned model). Label-free estimates of accuracy or F1
describe *that* classifier only if they use its cut; when the cut is not declared it can be
read from rows where both the score and the predicted label are known.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Scores travel as float32 and are renormalised on the way in: a negative prediction whose
# stored score lies this close above the smallest positive one is rounding, not a contradiction.
ROUNDING = 1e-6


def decision_threshold(positive_scores: Any, predicted_positive: Any) -> float:
    """The cut ``t`` such that ``score >= t`` reproduces the predicted labels, or a ValueError.

    The midpoint between the largest score predicted negative and the smallest predicted
    positive: every cut strictly between them reproduces the rows, the midpoint is the one
    farthest from both. With one side missing the cut is the observed edge (the smallest
    positive score, or just above the largest negative one). Rows that no single cut explains
    (a negative prediction scored above a positive one by more than float32 rounding) are
    refused: the model's rule is then not a threshold on this score.

    >>> decision_threshold([0.1, 0.25, 0.35, 0.9], [False, False, True, True])
    0.3
    """
    scores = np.asarray(positive_scores, dtype=np.float64)
    positive = np.asarray(predicted_positive, dtype=bool)
    if scores.ndim != 1 or scores.shape != positive.shape:
        raise ValueError(
            "positive_scores and predicted_positive must be 1-D and of the same length, got "
            f"shapes {scores.shape} and {positive.shape}"
        )
    if scores.size == 0:
        raise ValueError("no rows to read a decision threshold from")
    if not np.all(np.isfinite(scores)):
        raise ValueError("positive_scores must be finite")
    lowest_positive = float(scores[positive].min()) if positive.any() else None
    highest_negative = float(scores[~positive].max()) if (~positive).any() else None
    if lowest_positive is None:
        assert highest_negative is not None
        if highest_negative >= 1.0:
            raise ValueError(
                "every row is predicted negative, one of them with a positive-class score of "
                "1: no threshold on the score reproduces that; declare the threshold"
            )
        return float(np.nextafter(highest_negative, np.inf))
    if highest_negative is None:
        return lowest_positive
    if highest_negative >= lowest_positive:
        if highest_negative - lowest_positive <= ROUNDING:
            return lowest_positive
        above = int(np.sum(~positive & (scores >= lowest_positive)))
        raise ValueError(
            f"the predicted labels are not a threshold on the positive-class score: {above} "
            f"row(s) predicted negative score at least {lowest_positive:.6g}, the lowest score "
            f"predicted positive (the highest predicted negative is {highest_negative:.6g}); "
            "declare the model's threshold, or check which column is the positive class"
        )
    return (highest_negative + lowest_positive) / 2
