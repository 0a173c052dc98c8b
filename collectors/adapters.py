"""Model outputs to Tidewatch's prediction format, one small function per task.

>>> classification([0.1, 0.7, 0.2], ["copepod", "diatom", "detritus"])
{'label': 'diatom', 'probabilities': [0.1, 0.7, 0.2]}
>>> regression(3.5)
{'value': 3.5}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def classification(
    probabilities: Sequence[float] | np.ndarray | None,
    classes: Sequence[str],
    *,
    label: str | None = None,
) -> dict[str, Any]:
    """Predicted label (the top class unless given) and the class probabilities."""
    out: dict[str, Any] = {}
    if probabilities is not None:
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if len(p) != len(classes):
            raise ValueError(f"{len(p)} probabilities for {len(classes)} classes")
        out["label"] = label if label is not None else str(classes[int(np.argmax(p))])
        out["probabilities"] = p.tolist()
    elif label is not None:
        out["label"] = label
    else:
        raise ValueError("give the probabilities, the label, or both")
    return out


def regression(value: float) -> dict[str, Any]:
    return {"value": float(value)}


def detection(
    boxes: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str | int],
    scores: Sequence[float] | np.ndarray,
    *,
    classes: Sequence[str] | None = None,
    min_score: float = 0.0,
    max_boxes: int | None = None,
) -> dict[str, Any]:
    """Boxes ``[x1, y1, x2, y2]`` with their labels (names, or indices into ``classes``) and
    scores. ``min_score`` and ``max_boxes`` (highest scores first) keep the payload small;
    Tidewatch then sees the boxes a user would see."""
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(xyxy) == len(labels) == len(s):
        raise ValueError(f"{len(xyxy)} boxes, {len(labels)} labels and {len(s)} scores")
    order = [i for i in np.argsort(-s, kind="stable") if s[i] >= min_score][:max_boxes]
    return {
        "boxes": [
            {
                "label": _name(labels[i], classes),
                "score": float(s[i]),
                "x1": float(xyxy[i, 0]),
                "y1": float(xyxy[i, 1]),
                "x2": float(xyxy[i, 2]),
                "y2": float(xyxy[i, 3]),
            }
            for i in order
        ]
    }


def segmentation(mask: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Area fraction of each class in a (H, W) mask of class indices."""
    m = np.asarray(mask)
    if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(
            f"a segmentation mask is a 2-D array of class indices, got {m.dtype}{m.shape}"
        )
    if m.size and (m.min() < 0 or m.max() >= len(classes)):
        raise ValueError(f"mask values must be class indices in [0, {len(classes) - 1}]")
    counts = np.bincount(m.reshape(-1), minlength=len(classes)) / max(m.size, 1)
    return {"areas": {str(c): float(counts[j]) for j, c in enumerate(classes)}}


def _name(label: str | int, classes: Sequence[str] | None) -> str:
    if isinstance(label, str):
        return label
    if classes is None:
        raise ValueError("labels are indices: pass classes=[...] to name them")
    return str(classes[int(label)])


def from_mapping(result: Mapping[str, Any], classes: Sequence[str] | None = None) -> dict[str, Any]:
    """A best guess for dict outputs: ``label``/``probabilities``, ``value``, ``boxes``."""
    if "probabilities" in result and classes is not None:
        return classification(result["probabilities"], classes, label=result.get("label"))
    known = {
        k: result[k] for k in ("label", "probabilities", "value", "boxes", "areas") if k in result
    }
    if not known:
        raise ValueError(f"no prediction fields in {sorted(result)}")
    return known
