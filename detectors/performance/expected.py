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

    @property
    def tied(self) -> bool:
        """Whether some scores are tied (fewer groups than rows)."""
        return len(self.starts) < len(self.order)


def ranking(
    scores: np.ndarray, order: np.ndarray | None = None, ordered: np.ndarray | None = None
) -> Ranking:
    """``scores`` ranked; ``order`` is their argsort and ``ordered`` the sorted scores when the
    caller has them (tied scores form one group whatever their order)."""
    if order is None:
        order = np.argsort(scores)
    if ordered is None:
        ordered = scores[order]
    new = np.empty(len(ordered), dtype=bool)
    new[:1] = True
    new[1:] = ordered[1:] != ordered[:-1]
    if new.all():  # no ties: every row is its own group
        singletons = np.arange(len(ordered))
        return Ranking(order=order, starts=singletons, group=singletons)
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
        orders: Sequence[np.ndarray] | np.ndarray | None = None,
        ordered: Sequence[np.ndarray] | np.ndarray | None = None,
    ) -> Decisions:
        """Decisions of a model with (rows, classes) ``scores``: for two classes positive when
        the second column is at least ``threshold``, otherwise the class of largest score.
        ``orders``: the argsort of each scored class's column, if already known, and
        ``ordered`` the sorted columns."""
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
            values = [None] * len(score_classes) if ordered is None else ordered
            rankings = tuple(
                ranking(scores[:, k], o, v)
                for k, o, v in zip(score_classes, orders, values, strict=True)
            )
        return cls(predicted=predicted, score_classes=score_classes, rankings=rankings)


def _roc_auc(members: np.ndarray, rank: Ranking) -> np.ndarray:
    """ROC AUC of each row of ``members`` ((sets, rows), soft or 0/1) against one ranking.

    One ROC point per distinct score (tied rows move together), area by the trapezoid rule:
    with 0/1 labels exactly ``sklearn.metrics.roc_auc_score``. No positives or no negatives
    give NaN (0/0), as the metric is undefined then.
    """
    ordered = members[:, rank.order]
    if rank.tied:
        positives = np.add.reduceat(ordered, rank.starts, axis=1)[:, ::-1]
        sizes = np.diff(np.append(rank.starts, members.shape[1]))[::-1]
        seen = np.cumsum(sizes)
    else:  # every group one row
        positives = ordered[:, ::-1]
        seen = np.arange(1, members.shape[1] + 1)
    true_pos = np.cumsum(positives, axis=1)
    false_pos = seen[None, :] - true_pos
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
    return sampling_moments(q, np.asarray(grads))[0]


def sampling_moments(q: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sampling_variance` from (metrics, classes, rows) gradients ``g``, and per metric
    and row the gradient's mean over the row's label, ``sum_k g_k q_k``, which the
    calibration's variance needs too (:meth:`Calibrated.variance`)."""
    weighted = g * q
    means = weighted.sum(axis=1)
    per_row = (g * weighted).sum(axis=1) - means**2
    return np.maximum(per_row.sum(axis=1), 0.0), means


def expected_metrics(
    q: np.ndarray, decisions: Decisions, metrics: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(metrics,) expected values at ``Y = q`` ((classes, rows)) and (metrics, classes, rows)
    gradients.

    The numbers :func:`metric_values` (``q[:, None, :]``) and :func:`gradients` give, computed
    together and for every scored class at once: a window's estimate costs a few numpy passes
    over a (classes, rows) array instead of a dozen per class and metric. Classes whose scores
    hold ties take the per-class path (tie groups move together).
    """
    q = np.ascontiguousarray(q)  # sums along rows then add as metric_values' do
    n_classes, n = q.shape
    classes = np.array(decisions.score_classes)
    values = np.empty(len(metrics))
    out = np.zeros((len(metrics), n_classes, n))
    for i, metric in enumerate(metrics):
        g = out[i]
        if metric == "accuracy":
            chosen = decisions.predicted * n + np.arange(n)  # flat positions in q
            values[i] = q.ravel()[chosen].sum() / n
            g.ravel()[chosen] = 1.0 / n
        elif metric == "f1":
            hits = (decisions.predicted[None, :] == classes[:, None]).astype(np.float64)
            every = len(classes) == n_classes  # every class scored, in order
            members = q if every else q[classes]
            true_pos = (members * hits).sum(axis=1)
            predictions = np.bincount(decisions.predicted, minlength=n_classes)[classes]
            denominator = predictions + members.sum(axis=1)
            present = denominator > 0  # else F1 is 0 (zero_division) and does not move
            safe = np.where(present, denominator, 1.0)
            values[i] = np.mean(np.where(present, 2 * true_pos / safe, 0.0))
            # without a prediction or a member a class has no hits and no true positives,
            # so its slope is 0 as it should be
            per_hit = (2 / (safe * len(classes)))[:, None]
            base = (2 * true_pos / (safe**2 * len(classes)))[:, None]
            if every:
                np.multiply(hits, per_hit, out=g)
                g -= base
            else:
                g[classes] = hits * per_hit - base
        elif metric == "roc_auc":
            values[i] = _roc_auc_expected(q, decisions, g)
        else:
            raise ValueError(f"unknown metric {metric!r}; choose from {list(METRICS)}")
    return values, out


def _roc_auc_expected(q: np.ndarray, decisions: Decisions, g: np.ndarray) -> float:
    """Mean ROC AUC over the scored classes at ``Y = q``; its gradient is written into ``g``.

    For classes without tied scores every tie group is one row, so :func:`_roc_auc`'s and
    :func:`_roc_auc_gradient`'s group sums are the rows themselves: the same arithmetic, on a
    (classes, rows) array.
    """
    n = q.shape[1]
    count = len(decisions.score_classes)
    aucs = np.empty(count)
    plain = [i for i, r in enumerate(decisions.rankings) if not r.tied]
    for i, rank in enumerate(decisions.rankings):
        if rank.tied:
            k = decisions.score_classes[i]
            aucs[i] = _roc_auc(q[k][None, :], rank)[0]
            g[k] = _roc_auc_gradient(q[k], rank) / count
    if not plain:
        return float(np.mean(aucs))
    classes = np.array([decisions.score_classes[i] for i in plain])
    # flat positions in q of each class's rows in ascending score
    flat = np.stack([decisions.rankings[i].order for i in plain]) + (n * classes)[:, None]
    ordered = q.ravel()[flat]
    # the value: the ROC curve from the highest score down, area by trapezoids
    true_pos = np.cumsum(ordered[:, ::-1], axis=1)
    false_pos = np.arange(1, n + 1)[None, :] - true_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = true_pos / true_pos[:, -1:]
        fpr = false_pos / false_pos[:, -1:]
    # np.trapezoid over the curves with their leading (0, 0), term by term the same
    width = np.empty_like(fpr)
    width[:, 0] = fpr[:, 0]
    np.subtract(fpr[:, 1:], fpr[:, :-1], out=width[:, 1:])
    height = np.empty_like(tpr)
    height[:, 0] = tpr[:, 0]
    np.add(tpr[:, 1:], tpr[:, :-1], out=height[:, 1:])
    aucs[plain] = np.add.reduce(width * height / 2.0, axis=1)
    # the gradient (see _roc_auc_gradient): the soft negatives below row i less the soft
    # positives above it are i - (upto_i - y_i) - (P - upto_i) = i + y_i - P at ascending
    # position i; U, the soft pairs ranked right, is the area times P N less the rows' pairs
    # with themselves, which the trapezoids count half
    positives = true_pos[:, -1]
    pairs = positives * false_pos[:, -1]
    defined = pairs > 0  # else AUC is undefined and does not move
    safe = np.where(defined, pairs, 1.0)
    u = np.where(defined, aucs[plain], 0.0) * pairs
    u -= 0.5 * (ordered * (1.0 - ordered)).sum(axis=1)
    scale = np.where(defined, 1.0 / (safe * count), 0.0)
    shift = np.where(defined, (positives / safe + u * (n - 2 * positives) / safe**2) / count, 0)
    spread = np.arange(n)[None, :] + ordered
    g.ravel()[flat] = spread * scale[:, None] - shift[:, None]
    return float(np.mean(aucs))
