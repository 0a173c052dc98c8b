"""Realized object-detection metrics: precision, recall and average precision at one IoU.

Input is one list of boxes per image. A box is a :class:`Box` or a plain mapping with the same
keys (``"class"`` is accepted for ``"cls"``); coordinates are ``[x_min, y_min, x_max, y_max]``
in continuous units, so a box's area is ``(x_max - x_min) * (y_max - y_min)`` (no "+1" pixel
convention as in the old VOC devkit). A ground-truth box's score is ignored.

Matching (COCO style): per class, predictions are taken in descending score (ties keep input
order: image by image, then position in the image); each is matched to the still unmatched
ground-truth box of its class in its image with the highest IoU, if that IoU is
``>= iou_threshold``. A matched prediction is a true positive; any other (a duplicate of an
already found object, the wrong class, poor overlap) is a false positive; ground-truth boxes
left unmatched are misses.

Average precision is VOC2010+'s all-point interpolation: the area under the precision-recall
curve after each precision is replaced by the highest precision at equal or higher recall (the
monotone envelope), over the predictions in score order. A class with no ground-truth box has
no AP (NaN) and is left out of mAP; a class with ground truth but no prediction has AP 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from detectors.device import resolve_device

_COORDS = ("x_min", "y_min", "x_max", "y_max")


@dataclass(frozen=True)
class Box:
    """One axis-aligned box of class ``cls``; ``score`` is the detector's confidence."""

    cls: Any
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    score: float = 1.0


@dataclass(frozen=True)
class DetectionMetrics:
    """Detection metrics of one window at one IoU threshold.

    Per-class arrays follow ``classes``. ``precision``/``recall`` count the predictions with a
    score of at least ``score_threshold`` (all of them when None), with 0 for a zero
    denominator; ``precision_overall``/``recall_overall`` pool the boxes of all classes (micro
    average). ``average_precision`` uses every prediction and is NaN for a class with no ground
    truth; ``mean_average_precision`` is the mean over the other classes (None if none has
    ground truth).
    """

    classes: tuple[Any, ...]
    iou_threshold: float
    score_threshold: float | None
    n_images: int
    n_ground_truth: np.ndarray
    n_predictions: np.ndarray
    true_positives: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    average_precision: np.ndarray
    precision_overall: float
    recall_overall: float
    mean_average_precision: float | None


def iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of boxes ``[..., 4]`` that broadcast against each other.

    Two boxes whose union has no area (both degenerate) have IoU 0.
    """
    low = torch.maximum(boxes_a[..., :2], boxes_b[..., :2])
    high = torch.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    inter = (high - low).clamp(min=0).prod(dim=-1)
    area_a = (boxes_a[..., 2:] - boxes_a[..., :2]).prod(dim=-1)
    area_b = (boxes_b[..., 2:] - boxes_b[..., :2]).prod(dim=-1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)


def _check_boxes(data: Any, *, name: str) -> np.ndarray:
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must have shape (boxes, 4), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite coordinates")
    if np.any(array[:, 2:] < array[:, :2]):
        raise ValueError(f"{name}: every box needs x_max >= x_min and y_max >= y_min")
    return array


def box_iou(boxes_a: Any, boxes_b: Any, *, device: str = "auto") -> np.ndarray:
    """IoU of every box in ``boxes_a`` (N, 4) with every box in ``boxes_b`` (M, 4): (N, M).

    >>> box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 2, 1]], device="cpu").round(4).tolist()
    [[0.1429, 0.5]]
    """
    dev = resolve_device(device)
    a = torch.as_tensor(_check_boxes(boxes_a, name="boxes_a"), device=dev)
    b = torch.as_tensor(_check_boxes(boxes_b, name="boxes_b"), device=dev)
    return iou(a[:, None, :], b[None, :, :]).cpu().numpy()


@dataclass(frozen=True)
class _Parsed:
    image: np.ndarray  # int64 (boxes,)
    cls: np.ndarray  # int64 class index (boxes,)
    coords: np.ndarray  # float64 (boxes, 4)
    score: np.ndarray  # float64 (boxes,)


def _field(box: Any, key: str, where: str) -> Any:
    if isinstance(box, Box):
        return getattr(box, key)
    if key == "cls" and "cls" not in box and "class" in box:
        return box["class"]
    if key == "score" and "score" not in box:
        return 1.0
    if key not in box:
        raise ValueError(f"{where} has no {key!r}; boxes need cls, x_min, y_min, x_max, y_max")
    return box[key]


def _parse(images: Any, index: Mapping[Any, int], *, name: str) -> _Parsed:
    if isinstance(images, str | bytes | Mapping) or not isinstance(images, Sequence):
        raise ValueError(f"{name} must be a list with one list of boxes per image")
    image, cls, coords, score = [], [], [], []
    for i, boxes in enumerate(images):
        if isinstance(boxes, str | bytes | Mapping | Box) or not isinstance(boxes, Sequence):
            raise ValueError(f"{name}[{i}] must be a list of boxes (one image), got {boxes!r}")
        for j, box in enumerate(boxes):
            where = f"{name}[{i}][{j}]"
            if not isinstance(box, Box | Mapping):
                raise ValueError(f"{where} must be a Box or a mapping, got {type(box).__name__}")
            label = _field(box, "cls", where)
            if label not in index:
                raise ValueError(f"{where} has class {label!r}, not among classes {list(index)}")
            values = [_field(box, key, where) for key in (*_COORDS, "score")]
            try:
                numbers = [float(v) for v in values]
            except (TypeError, ValueError):
                raise ValueError(f"{where}: coordinates and score must be numbers") from None
            if not all(math.isfinite(v) for v in numbers):
                raise ValueError(f"{where}: coordinates and score must be finite")
            x_min, y_min, x_max, y_max, confidence = numbers
            if x_max < x_min or y_max < y_min:
                raise ValueError(f"{where}: a box needs x_max >= x_min and y_max >= y_min")
            image.append(i)
            cls.append(index[label])
            coords.append([x_min, y_min, x_max, y_max])
            score.append(confidence)
    return _Parsed(
        image=np.asarray(image, dtype=np.int64),
        cls=np.asarray(cls, dtype=np.int64),
        coords=np.asarray(coords, dtype=np.float64).reshape(-1, 4),
        score=np.asarray(score, dtype=np.float64),
    )


def _candidate_pairs(
    gt: _Parsed, pred: _Parsed, n_classes: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (prediction, ground truth) pair of the same image and class, with its IoU.

    Only these pairs can ever match, so the IoU of all of them is computed in one batch.
    """
    gt_key = gt.image * n_classes + gt.cls
    pred_key = pred.image * n_classes + pred.cls
    order = np.argsort(gt_key, kind="stable")
    start = np.searchsorted(gt_key[order], pred_key, side="left")
    count = np.searchsorted(gt_key[order], pred_key, side="right") - start
    pair_pred = np.repeat(np.arange(len(pred_key)), count)
    first = np.repeat(np.cumsum(count) - count, count)
    pair_gt = order[np.repeat(start, count) + np.arange(len(pair_pred)) - first]
    overlap = iou(
        torch.as_tensor(pred.coords[pair_pred], device=device),
        torch.as_tensor(gt.coords[pair_gt], device=device),
    )
    return pair_pred, pair_gt, overlap.cpu().numpy()


def _match(
    gt: _Parsed, pred: _Parsed, n_classes: int, threshold: float, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching (see the module docstring).

    Returns which predictions are true positives and the order (descending score, stable)
    in which they were taken.
    """
    pair_pred, pair_gt, overlap = _candidate_pairs(gt, pred, n_classes, device)
    keep = overlap >= threshold
    pair_pred, pair_gt, overlap = pair_pred[keep], pair_gt[keep], overlap[keep]
    # each prediction's candidates, best IoU first (ties: the earlier ground-truth box)
    by = np.lexsort((pair_gt, -overlap, pair_pred))
    pair_pred, pair_gt = pair_pred[by], pair_gt[by]
    bounds = np.searchsorted(pair_pred, np.arange(len(pred.score) + 1))
    order = np.argsort(-pred.score, kind="stable")
    matched = np.zeros(len(gt.score), dtype=bool)
    hit = np.zeros(len(pred.score), dtype=bool)
    # sequential by nature: a box taken by a higher score is no longer available
    for p in order.tolist():
        for g in pair_gt[bounds[p] : bounds[p + 1]].tolist():
            if not matched[g]:
                matched[g] = hit[p] = True
                break
    return hit, order


def all_point_ap(hits: torch.Tensor, n_ground_truth: int) -> float:
    """VOC2010+ all-point interpolated AP of predictions in descending score order.

    ``hits`` flags the true positives. Precision is made monotone (each value replaced by the
    maximum at equal or higher recall) and integrated over recall as a step function.

    >>> all_point_ap(torch.tensor([True, False, True]), 2)  # P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1
    0.8333333333333333
    """
    tp = hits.to(torch.float64).cumsum(0)
    fp = (~hits).to(torch.float64).cumsum(0)
    zero, one = hits.new_zeros(1, dtype=torch.float64), hits.new_ones(1, dtype=torch.float64)
    recall = torch.cat([zero, tp / n_ground_truth, one])
    precision = torch.cat([zero, tp / (tp + fp), zero])
    envelope = precision.flip(0).cummax(0).values.flip(0)
    return float(((recall[1:] - recall[:-1]) * envelope[1:]).sum())


def detection_metrics(
    ground_truth: Sequence[Sequence[Box | Mapping[str, Any]]],
    predictions: Sequence[Sequence[Box | Mapping[str, Any]]],
    *,
    classes: Sequence[Any],
    iou_threshold: float = 0.5,
    score_threshold: float | None = None,
    device: str = "auto",
) -> DetectionMetrics:
    """Precision, recall and AP per class, micro precision/recall and mAP at ``iou_threshold``.

    ``ground_truth[i]`` and ``predictions[i]`` are the boxes of image ``i``; see the module
    docstring for the box format, the matching and the interpolation. mAP at the default
    threshold is VOC's mAP@0.5.

    >>> gt = [[Box("cat", 0, 0, 10, 10)], [Box("dog", 0, 0, 4, 4)]]
    >>> pred = [[Box("cat", 1, 0, 10, 10, 0.9), Box("cat", 0, 0, 10, 10, 0.8)], []]
    >>> m = detection_metrics(gt, pred, classes=["cat", "dog"], device="cpu")
    >>> m.precision.tolist(), m.recall.tolist(), m.average_precision.tolist()
    ([0.5, 0.0], [1.0, 0.0], [1.0, 0.0])
    >>> m.mean_average_precision, m.recall_overall
    (0.5, 0.5)
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold!r}")
    # numpy scalars become Python ones, so results compare and serialize as plain labels
    names = tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"classes must name at least one class, each once; got {list(names)}")
    if len(ground_truth) != len(predictions):
        raise ValueError(
            f"ground_truth has {len(ground_truth)} images but predictions has "
            f"{len(predictions)}; give one (possibly empty) list of boxes per image in both"
        )
    index = {label: k for k, label in enumerate(names)}
    gt = _parse(ground_truth, index, name="ground_truth")
    pred = _parse(predictions, index, name="predictions")
    dev = resolve_device(device)
    k = len(names)
    hit, order = _match(gt, pred, k, float(iou_threshold), dev)

    hits_t = torch.as_tensor(hit[order], device=dev)
    cls_t = torch.as_tensor(pred.cls[order], device=dev)
    n_gt = np.bincount(gt.cls, minlength=k)
    ap = np.full(k, np.nan)
    for c in np.flatnonzero(n_gt):
        ap[c] = all_point_ap(hits_t[cls_t == int(c)], int(n_gt[c]))

    counted = np.ones(len(pred.score), dtype=bool)
    if score_threshold is not None:
        counted = pred.score >= score_threshold
    n_pred = np.bincount(pred.cls[counted], minlength=k)
    tp = np.bincount(pred.cls[counted & hit], minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
        recall = np.where(n_gt > 0, tp / np.maximum(n_gt, 1), 0.0)
    return DetectionMetrics(
        classes=names,
        iou_threshold=float(iou_threshold),
        score_threshold=None if score_threshold is None else float(score_threshold),
        n_images=len(ground_truth),
        n_ground_truth=n_gt.astype(np.int64),
        n_predictions=n_pred.astype(np.int64),
        true_positives=tp.astype(np.int64),
        precision=precision,
        recall=recall,
        average_precision=ap,
        precision_overall=float(tp.sum() / n_pred.sum()) if n_pred.sum() else 0.0,
        recall_overall=float(tp.sum() / n_gt.sum()) if n_gt.sum() else 0.0,
        mean_average_precision=float(np.nanmean(ap)) if n_gt.any() else None,
    )
