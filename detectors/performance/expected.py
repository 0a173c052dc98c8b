"""Classification metrics of soft labels, and the sampling variance of the realized ones.

Given ``q[i, k]``, the probability that row ``i``'s label is class ``k`` (labels independent
given the rows), and the model's fixed decisions, every metric CBPE reports has

- an *expected* value: the metric computed with ``q`` in place of 0/1 memberships (NannyML's
  definitions: accuracy and F1 from the expected confusion matrix, ROC AUC from the expected
  ROC curve). With 0/1 memberships the same code gives the realized metric, equal to
  scikit-learn's;
- a *sampling variance*: the variance of the metric realized by labels drawn from ``q``. Each
  metric is a smooth function of the memberships ``Y``; linearised at ``Y = q`` (the delta
  method), ``M(Y) ~ M(q) + sum_ik g_ik (Y_ik - q_ik)`` with ``g = dM/dY``, and one row's labels
  are one draw of a categorical variable, so
  ``Var M = sum_i (sum_k g_ik**2 q_ik - (sum_k g_ik q_ik)**2)``. Exact for accuracy (a mean),
  first order for F1 and ROC AUC (ratios), whose error is O(1/n).

Everything is plain numpy on the CPU: a window costs a sort per scored class and a few passes
over its rows, cheaper than moving the rows to an accelerator. Long dot products are written as
``(a * b).sum()``: a BLAS call spins up its thread pool, which on a busy machine cost more
(measured 8 ms for 50,000 values) than the sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METRICS = ("accuracy", "f1", "roc_auc")


@dataclass(frozen=True)
class Ranking:
    """One class's scores in ascending order, cut into groups of tied scores."""

    order: np.ndarray  # row positions, ascending score
    starts: np.ndarray  # where each tie group starts in ``order``
    group: np.ndarray  # the tie group of each position of ``order``


def ranking(scores: np.ndarray, order: np.ndarray | None = None) -> Ranking:
    """``scores`` ranked; ``order`` is their argsort when the caller has it (tied scores form
    one group whatever their order)."""
    if order is None:
        order = np.argsort(scores)
    ordered = scores[order]
    new = np.empty(len(ordered), dtype=bool)
    new[:1] = True
    new[1:] = ordered[1:] != ordered[:-1]
    return Ranking(order=order, starts=np.flatnonzero(new), group=np.cumsum(new) - 1)


@dataclass(frozen=True)
class Decisions:
    """The model's decisions on a window: what each row was predicted, and the rankings.

    ``score_classes`` are the classes F1 and ROC AUC are taken for (the positive class for two
    classes, every class otherwise, macro-averaged); ``rankings`` follow them, one per class,
    when ROC AUC is wanted.
    """

    predicted: np.ndarray  # (rows,) class index
    score_classes: tuple[int, ...]
    rankings: tuple[Ranking, ...]

    @classmethod
    def of(
        cls,
        scores: np.ndarray,
        threshold: float,
        metrics: Sequence[str],
        orders: Sequence[np.ndarray] | None = None,
    ) -> Decisions:
        """Decisions of a model with (rows, classes) ``scores``: for two classes positive when
        the second column is at least ``threshold``, otherwise the class of largest score.
        ``orders``: the argsort of each scored class's column, if already known."""
        n_classes = scores.shape[1]
        if n_classes == 2:
            predicted = (scores[:, 1] >= threshold).astype(np.int64)
            score_classes: tuple[int, ...] = (1,)
        else:
            predicted = np.argmax(scores, axis=1)
            score_classes = tuple(range(n_classes))
        if "roc_auc" not in metrics:
            rankings: tuple[Ranking, ...] = ()
        elif orders is None:
            rankings = tuple(ranking(scores[:, k]) for k in score_classes)
        else:
            rankings = tuple(
                ranking(scores[:, k], o) for k, o in zip(score_classes, orders, strict=True)
            )
        return cls(predicted=predicted, score_classes=score_classes, rankings=rankings)


def _roc_auc(members: np.ndarray, rank: Ranking) -> np.ndarray:
    """ROC AUC of each row of ``members`` ((sets, rows), soft or 0/1) against one ranking.

    One ROC point per distinct score (tied rows move together), area by the trapezoid rule:
    with 0/1 labels exactly ``sklearn.metrics.roc_auc_score``. No positives or no negatives
    give NaN (0/0), as the metric is undefined then.
    """
    ordered = members[:, rank.order]
    positives = np.add.reduceat(ordered, rank.starts, axis=1)[:, ::-1]
    sizes = np.diff(np.append(rank.starts, members.shape[1]))[::-1]
    true_pos = np.cumsum(positives, axis=1)
    false_pos = np.cumsum(sizes)[None, :] - true_pos
    zero = np.zeros((members.shape[0], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.hstack([zero, true_pos / true_pos[:, -1:]])
        fpr = np.hstack([zero, false_pos / false_pos[:, -1:]])
    return np.trapezoid(tpr, fpr, axis=1)


def metric_values(members: np.ndarray, decisions: Decisions, metrics: Sequence[str]) -> np.ndarray:
    """(metrics, sets) values for memberships soft or 0/1, class-major: ``members[k, s, i]``
    is set ``s``'s membership of row ``i`` in class ``k``."""
    n = members.shape[2]
    out = []
    for metric in metrics:
        if metric == "accuracy":
            out.append(members[decisions.predicted, :, np.arange(n)].sum(axis=0) / n)
        elif metric == "f1":
            scores = []
            for k in decisions.score_classes:
                hits = (decisions.predicted == k).astype(np.float64)
                true_pos = (members[k] * hits).sum(axis=1)
                denominator = hits.sum() + members[k].sum(axis=1)
                # no positives predicted or present: F1 is 0, as scikit-learn's zero_division
                safe = np.where(denominator > 0, denominator, 1.0)
                scores.append(np.where(denominator > 0, 2 * true_pos / safe, 0.0))
            out.append(np.mean(scores, axis=0))
        elif metric == "roc_auc":
            aucs = [
                _roc_auc(members[k], rank)
                for k, rank in zip(decisions.score_classes, decisions.rankings, strict=True)
            ]
            out.append(np.mean(aucs, axis=0))
        else:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(METRICS)}")
    return np.array(out)


def _roc_auc_gradient(q: np.ndarray, rank: Ranking) -> np.ndarray:
    """d AUC / d y_i at y = q for one class, AUC = U / (P N) over pairs of distinct rows.

    ``U = sum_{i != j} y_i (1 - y_j) h_ij`` with ``h_ij`` 1 when row i scores above row j, 1/2
    when tied. ``dU/dy_i`` is the (soft) count of negatives below row i minus the positives
    above it, halves for ties, both from cumulative sums over the tie groups.
    """
    n = len(q)
    ordered = q[rank.order]
    negative = 1.0 - ordered
    group_pos = np.add.reduceat(ordered, rank.starts)
    group_neg = np.add.reduceat(negative, rank.starts)
    neg_below = (np.cumsum(group_neg) - group_neg)[rank.group]
    pos_above = (ordered.sum() - np.cumsum(group_pos))[rank.group]
    below = neg_below + 0.5 * (group_neg[rank.group] - negative)
    above = pos_above + 0.5 * (group_pos[rank.group] - ordered)
    pairs_pos = float(ordered.sum())
    pairs = pairs_pos * (n - pairs_pos)
    gradient = np.zeros(n)
    if pairs > 0:
        u = float((ordered * below).sum())
        gradient[rank.order] = (below - above) / pairs - u * (n - 2 * pairs_pos) / pairs**2
    return gradient


def gradients(q: np.ndarray, decisions: Decisions, metrics: Sequence[str]) -> list[np.ndarray]:
    """Per metric, ``dM/dY`` at ``Y = q``: (classes, rows), class-major like ``q``."""
    n_classes, n = q.shape
    rows = np.arange(n)
    out = []
    for metric in metrics:
        g = np.zeros((n_classes, n))
        if metric == "accuracy":
            g[decisions.predicted, rows] = 1.0 / n
        elif metric == "f1":
            for k in decisions.score_classes:
                hits = (decisions.predicted == k).astype(np.float64)
                true_pos = float((q[k] * hits).sum())
                denominator = hits.sum() + q[k].sum()
                if denominator > 0:
                    g[k] += 2 * hits / denominator - 2 * true_pos / denominator**2
            g /= len(decisions.score_classes)
        else:
            for k, rank in zip(decisions.score_classes, decisions.rankings, strict=True):
                g[k] += _roc_auc_gradient(q[k], rank)
            g /= len(decisions.score_classes)
        out.append(g)
    return out


def sampling_variance(q: np.ndarray, grads: Sequence[np.ndarray]) -> np.ndarray:
    """(metrics,) variance of the metric realized by labels drawn from ``q`` ((classes, rows)),
    from each metric's :func:`gradients`. First order in the memberships (see the module
    docstring); exact for accuracy."""
    out = [float(np.sum((g * g * q).sum(axis=0) - (g * q).sum(axis=0) ** 2)) for g in grads]
    return np.maximum(np.array(out), 0.0)
