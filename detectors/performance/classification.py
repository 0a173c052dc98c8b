"""Realized classification metrics, once the labels of a window have arrived.

Every metric follows scikit-learn's definition so the numbers a dashboard shows can be checked
against a notebook: accuracy, balanced accuracy, precision / recall / F1 (per class, macro and
micro averaged, ``zero_division=0``), the confusion matrix, ROC AUC (binary, or one-vs-rest
macro average), log loss, plus the top-label expected calibration error. Counting and ranking
run batched in torch (float64) on the configured device; results are Python floats and numpy
arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from detectors.device import resolve_device

# Rows of a probability matrix must sum to one within this (absolute) tolerance
PROBABILITY_SUM_TOLERANCE = 1e-6
# scikit-learn's log_loss clips probabilities to [eps, 1 - eps] with the float64 machine epsilon
_LOG_LOSS_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class ClassificationMetrics:
    """Realized metrics of one window of labelled predictions.

    Per-class arrays (``precision``, ``recall``, ``f1``, ``support``) and the rows/columns of
    ``confusion_matrix`` (rows true, columns predicted) follow the order of ``classes``. A
    ratio whose denominator is zero (precision of a class never predicted, recall of a class
    that never occurs) is 0, as scikit-learn's ``zero_division=0``. ``roc_auc``, ``log_loss``
    and ``expected_calibration_error`` are None without probabilities; ``roc_auc`` is also None
    when some class never occurs in ``y_true`` (or every row is of one class), where AUC is
    undefined.
    """

    classes: tuple[Any, ...]
    n: int
    accuracy: float
    balanced_accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    precision_micro: float
    recall_micro: float
    f1_micro: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion_matrix: np.ndarray
    roc_auc: float | None
    log_loss: float | None
    expected_calibration_error: float | None
    n_bins: int


def check_labels(data: Any, *, name: str) -> np.ndarray:
    """``data`` as a 1-D numpy array of labels (strings or integers), or a clear ValueError."""
    array = np.asarray(data)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per row), got shape {array.shape}")
    return array


def _unique(labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return np.unique(labels, return_inverse=True)
    except TypeError as error:  # object arrays mixing e.g. str and int cannot be sorted
        raise ValueError(f"{name} mixes label types that cannot be compared: {error}") from None


def resolve_classes(
    classes: Sequence[Any] | None, *labels: np.ndarray, names: Sequence[str]
) -> tuple[Any, ...]:
    """The given class order (checked for duplicates) or the sorted union of the labels seen."""
    if classes is not None:
        # numpy scalars become Python ones; np.asarray would turn [1, "a"] into strings
        resolved = tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
        if not resolved:
            raise ValueError("classes must name at least one class")
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"classes must not repeat a label, got {list(resolved)}")
        return resolved
    seen: set[Any] = set()
    for array, name in zip(labels, names, strict=True):
        seen.update(_unique(array, name)[0].tolist())
    try:
        return tuple(sorted(seen))
    except TypeError:
        raise ValueError(
            "labels mix types that cannot be sorted; pass classes= to fix the order"
        ) from None


def encode_labels(labels: np.ndarray, classes: tuple[Any, ...], *, name: str) -> np.ndarray:
    """Class index (int64) of every label, or a ValueError naming labels not in ``classes``."""
    index = {label: i for i, label in enumerate(classes)}
    uniques, inverse = _unique(labels, name)
    found = [index.get(label, -1) for label in uniques.tolist()]
    unknown = [label for label, i in zip(uniques.tolist(), found, strict=True) if i < 0]
    if unknown:
        raise ValueError(
            f"{name} holds labels that are not among the classes {list(classes)}: "
            f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}"
        )
    return np.asarray(found, dtype=np.int64)[inverse.reshape(-1)]


def check_class_probabilities(data: Any, *, n_rows: int, name: str = "probabilities") -> np.ndarray:
    """``data`` as a float64 (rows, classes) array of probabilities, or a clear ValueError.

    A 1-D array is a binary classifier's probability of the positive class and becomes
    ``[1 - p, p]``. Values must be finite, in [0, 1], and each row must sum to 1 within 1e-6.
    """
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = np.column_stack([1.0 - array, array])
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be (rows,) positive-class probabilities or (rows, classes), "
            f"got shape {array.shape}"
        )
    if array.shape[0] != n_rows:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but y_true has {n_rows}; they must match"
        )
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"{name} must hold finite probabilities in [0, 1]")
    worst = float(np.abs(array.sum(axis=1) - 1.0).max())
    if worst > PROBABILITY_SUM_TOLERANCE:
        raise ValueError(
            f"each row of {name} must sum to 1 (within {PROBABILITY_SUM_TOLERANCE:g}); "
            f"the worst row is off by {worst:.3g}"
        )
    return array


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # zero_division=0: a ratio with nothing to count is 0, not NaN
    return torch.where(
        denominator > 0, numerator / denominator.clamp(min=1), torch.zeros_like(numerator)
    )


def one_vs_rest_auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each column of ``scores`` (rows, K) for ``labels == column`` against the rest.

    Mann-Whitney U with midranks: ``(sum of positive ranks - P (P + 1) / 2) / (P N)``. Tied
    scores share the mean of their ranks, which is exactly the area of the trapezoids
    scikit-learn's ``roc_curve`` draws through ties. NaN for a column with no positive or no
    negative row.

    >>> s = torch.tensor([[0.1], [0.4], [0.4], [0.8]], dtype=torch.float64)
    >>> float(one_vs_rest_auc(s, torch.tensor([0, 0, 0, 0])).item())  # labels 0 == column 0
    nan
    >>> float(one_vs_rest_auc(torch.cat([1 - s, s], 1), torch.tensor([0, 1, 0, 1]))[1])
    0.875
    """
    columns = scores.T.contiguous()
    ordered = torch.sort(columns, dim=1).values
    below = torch.searchsorted(ordered, columns, right=False)  # values strictly smaller
    up_to = torch.searchsorted(ordered, columns, right=True)  # values smaller or equal
    ranks = (below + up_to + 1).to(torch.float64) / 2.0  # 1-based midrank
    k = torch.arange(columns.shape[0], device=scores.device)
    positive = labels[None, :] == k[:, None]
    n_pos = positive.sum(dim=1).to(torch.float64)
    n_neg = columns.shape[1] - n_pos
    rank_sum = torch.where(positive, ranks, torch.zeros_like(ranks)).sum(dim=1)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def top_label_ece(confidence: torch.Tensor, correct: torch.Tensor, *, n_bins: int) -> torch.Tensor:
    """Top-label expected calibration error over ``n_bins`` equal-width confidence bins.

    Bin ``b`` holds the rows whose confidence lies in ``(edges[b], edges[b + 1]]`` with
    ``edges = numpy.linspace(0, 1, n_bins + 1)`` (a confidence of exactly 0 joins the first
    bin). ``ECE = sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|``, which equals
    ``sum_b |correct in B_b - summed confidence in B_b| / n``.

    >>> conf = torch.tensor([0.75, 0.75, 0.5, 0.5], dtype=torch.float64)
    >>> float(top_label_ece(conf, torch.tensor([True, True, True, False]), n_bins=10))
    0.125
    """
    edges = torch.as_tensor(np.linspace(0.0, 1.0, n_bins + 1), device=confidence.device)
    # bucketize(right=False) gives i with edges[i-1] < x <= edges[i]: bin i - 1
    bins = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, n_bins - 1)
    hits = torch.bincount(bins, weights=correct.to(torch.float64), minlength=n_bins)
    mass = torch.bincount(bins, weights=confidence, minlength=n_bins)
    return (hits - mass).abs().sum() / confidence.shape[0]


def classification_metrics(
    y_true: Any,
    y_pred: Any = None,
    *,
    probabilities: Any = None,
    classes: Sequence[Any] | None = None,
    n_bins: int = 10,
    device: str = "auto",
) -> ClassificationMetrics:
    """Realized metrics of a classifier on one window of labelled rows.

    ``y_true`` and ``y_pred`` hold labels (strings or integers); ``classes`` fixes the class
    order (default: the sorted union of the labels seen, which must then match the width of
    ``probabilities``). ``probabilities`` is (rows, classes) in ``classes`` order, or for two
    classes (rows,) the probability of ``classes[1]``; without ``y_pred`` the prediction is
    its argmax (the first class on ties).

    - ``roc_auc``: binary, the AUC of ``classes[1]``'s probability; multiclass, the macro mean
      of the one-vs-rest AUCs, as ``roc_auc_score(multi_class="ovr", average="macro")``.
    - ``log_loss``: mean ``-log p(true class)``, with p clipped to ``[eps, 1 - eps]`` as
      scikit-learn does.
    - ``expected_calibration_error``: top-label ECE (confidence = the highest probability,
      correct = its class is the true one, regardless of ``y_pred``); see
      :func:`top_label_ece` for the bins.
    - ``balanced_accuracy``: mean recall over the classes that occur in ``y_true``.

    >>> m = classification_metrics(["a", "b", "b", "a"], ["a", "b", "a", "a"], device="cpu")
    >>> m.accuracy, m.recall.tolist(), m.confusion_matrix.tolist()
    (0.75, [1.0, 0.5], [[2, 0], [1, 1]])
    >>> p = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    >>> m = classification_metrics(["a", "b", "b", "a"], probabilities=p, device="cpu")
    >>> m.accuracy, m.roc_auc
    (0.5, 0.75)
    """
    if not isinstance(n_bins, int | np.integer) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    truth = check_labels(y_true, name="y_true")
    n = truth.shape[0]
    if n == 0:
        raise ValueError("y_true is empty; there is nothing to score")
    if y_pred is None and probabilities is None:
        raise ValueError("give y_pred, probabilities, or both")
    predicted = None if y_pred is None else check_labels(y_pred, name="y_pred")
    if predicted is not None and predicted.shape[0] != n:
        raise ValueError(
            f"y_pred has {predicted.shape[0]} rows but y_true has {n}; they must match"
        )
    proba = None if probabilities is None else check_class_probabilities(probabilities, n_rows=n)

    seen = (truth,) if predicted is None else (truth, predicted)
    names = ("y_true",) if predicted is None else ("y_true", "y_pred")
    resolved = resolve_classes(classes, *seen, names=names)
    k = len(resolved)
    if proba is not None and proba.shape[1] != k:
        hint = "" if classes is not None else "; pass classes= to name every column"
        raise ValueError(
            f"probabilities has {proba.shape[1]} columns but there are {k} classes "
            f"{list(resolved)}{hint}"
        )

    dev = resolve_device(device)
    true_idx = torch.as_tensor(encode_labels(truth, resolved, name="y_true"), device=dev)
    proba_t = None if proba is None else torch.as_tensor(proba, device=dev)
    if predicted is not None:
        pred_idx = torch.as_tensor(encode_labels(predicted, resolved, name="y_pred"), device=dev)
    else:
        assert proba_t is not None
        pred_idx = proba_t.argmax(dim=1)

    confusion = torch.bincount(true_idx * k + pred_idx, minlength=k * k).reshape(k, k)
    cm = confusion.to(torch.float64)
    tp = torch.diagonal(cm)
    true_sum, pred_sum = cm.sum(dim=1), cm.sum(dim=0)
    precision = _safe_divide(tp, pred_sum)
    recall = _safe_divide(tp, true_sum)
    f1 = _safe_divide(2 * tp, true_sum + pred_sum)
    # micro averages pool the counts; with every label among the classes they equal accuracy
    micro_p = _safe_divide(tp.sum(), pred_sum.sum())
    micro_r = _safe_divide(tp.sum(), true_sum.sum())
    micro_f = _safe_divide(2 * tp.sum(), true_sum.sum() + pred_sum.sum())

    roc_auc = log_loss = ece = None
    if proba_t is not None:
        present = bool(((true_sum > 0) & (true_sum < n)).all())
        if present and k >= 2:
            auc = one_vs_rest_auc(proba_t, true_idx)
            # binary: the positive class is classes[1]; multiclass: macro mean over classes
            roc_auc = float(auc[1] if k == 2 else auc.mean())
        p_true = proba_t.gather(1, true_idx[:, None])[:, 0]
        log_loss = float(-p_true.clamp(_LOG_LOSS_EPS, 1.0 - _LOG_LOSS_EPS).log().mean())
        confidence, top = proba_t.max(dim=1)
        ece = float(top_label_ece(confidence, top == true_idx, n_bins=int(n_bins)))

    return ClassificationMetrics(
        classes=resolved,
        n=n,
        accuracy=float(tp.sum() / n),
        balanced_accuracy=float(recall[true_sum > 0].mean()),
        precision_macro=float(precision.mean()),
        recall_macro=float(recall.mean()),
        f1_macro=float(f1.mean()),
        precision_micro=float(micro_p),
        recall_micro=float(micro_r),
        f1_micro=float(micro_f),
        precision=precision.cpu().numpy(),
        recall=recall.cpu().numpy(),
        f1=f1.cpu().numpy(),
        support=true_sum.to(torch.int64).cpu().numpy(),
        confusion_matrix=confusion.to(torch.int64).cpu().numpy(),
        roc_auc=roc_auc,
        log_loss=log_loss,
        expected_calibration_error=ece,
        n_bins=int(n_bins),
    )
