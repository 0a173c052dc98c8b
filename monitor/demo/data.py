"""Synthetic telemetry of a plankton image classifier, before and after a camera problem.

Image statistics (brightness, contrast, sharpness, saturation, size), the camera that took the
image, a 16-dimensional embedding, and class probabilities over four plankton classes. After
the change point the images get darker and blurrier and dinoflagellates stop appearing; the
other features keep their distribution. Seeded, so a run is reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLASSES = ["copepod", "diatom", "dinoflagellate", "detritus"]
EMBEDDING_DIM = 16
DRIFTED = {"brightness", "sharpness", "prediction.label"}
UNDRIFTED = {"contrast", "saturation", "width", "height", "camera"}

SPEC: dict[str, Any] = {
    "name": "plankton-demo",
    "version": "1",
    "description": "Demo image classifier for four plankton classes",
    "features": [
        {"name": "brightness", "kind": "numeric"},
        {"name": "contrast", "kind": "numeric"},
        {"name": "sharpness", "kind": "numeric"},
        {"name": "saturation", "kind": "numeric"},
        {"name": "width", "kind": "numeric"},
        {"name": "height", "kind": "numeric"},
        {"name": "camera", "kind": "categorical"},
        {"name": "embedding", "kind": "vector", "dim": EMBEDDING_DIM},
    ],
    "output": {"task": "classification", "classes": CLASSES},
    "monitors": [
        {"name": "drift", "window": {"by": "count", "size": 1000}, "min_samples": 200},
        {
            # taxonomists validate a share of the images later: realized accuracy on those,
            # and a label-free estimate (CBPE) for the whole window
            "name": "performance",
            "window": {"by": "count", "size": 1000},
            "detectors": {},
            "quality": False,
            "performance": {
                "metrics": ["accuracy", "f1_macro"],
                "thresholds": {"accuracy": 0.8},
                "min_labels": 100,
                "estimate": True,
            },
        },
    ],
}


def generate(n: int, *, drifted: bool, seed: int) -> list[dict[str, Any]]:
    """``n`` records as plain dicts: ``{"features": {...}, "prediction": {...}}``."""
    rng = np.random.default_rng(seed)
    class_p = np.array([0.35, 0.3, 0.2, 0.15])
    if drifted:  # dinoflagellates disappear from the stream
        class_p = np.array([0.35, 0.3, 0.0, 0.15]) / 0.8
    labels = rng.choice(len(CLASSES), size=n, p=class_p)
    centres = np.random.default_rng(1234).normal(scale=1.5, size=(len(CLASSES), EMBEDDING_DIM))
    embedding = centres[labels] + rng.normal(size=(n, EMBEDDING_DIM))
    brightness = rng.beta(5, 4, size=n)
    sharpness = rng.lognormal(mean=3.0, sigma=0.4, size=n)
    if drifted:
        brightness *= 0.75
        sharpness *= 0.6
    contrast = rng.gamma(4.0, 0.05, size=n)
    saturation = rng.beta(2, 5, size=n)
    width = rng.choice([224, 256, 320], size=n)
    height = rng.choice([224, 256], size=n)
    camera = rng.choice(["flowcam-1", "flowcam-2"], size=n)
    logits = rng.normal(scale=0.8, size=(n, len(CLASSES)))
    logits[np.arange(n), labels] += 3.0 if not drifted else 2.2  # blur lowers confidence
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    return [
        {
            "features": {
                "brightness": float(brightness[i]),
                "contrast": float(contrast[i]),
                "sharpness": float(sharpness[i]),
                "saturation": float(saturation[i]),
                "width": int(width[i]),
                "height": int(height[i]),
                "camera": str(camera[i]),
                "embedding": embedding[i].round(5).tolist(),
            },
            "prediction": {
                "label": CLASSES[int(proba[i].argmax())],
                "probabilities": proba[i].round(6).tolist(),
            },
        }
        for i in range(n)
    ]


def true_labels(n: int, *, drifted: bool, seed: int) -> list[str]:
    """The classes of the images :func:`generate` made with the same arguments."""
    class_p = np.array([0.35, 0.3, 0.2, 0.15])
    if drifted:
        class_p = np.array([0.35, 0.3, 0.0, 0.15]) / 0.8
    drawn = np.random.default_rng(seed).choice(len(CLASSES), size=n, p=class_p)
    return [CLASSES[int(k)] for k in drawn]


def reference_csv(n: int = 2000, seed: int = 7) -> str:
    """The reference as CSV (vector columns ``embedding_0..15``, ``proba_<class>``)."""
    rows = generate(n, drifted=False, seed=seed)
    header = ["brightness", "contrast", "sharpness", "saturation", "width", "height", "camera"]
    header += [f"embedding_{j}" for j in range(EMBEDDING_DIM)]
    header += ["prediction"] + [f"proba_{c}" for c in CLASSES]
    lines = [",".join(header)]
    for r in rows:
        f, p = r["features"], r["prediction"]
        values = [f[h] for h in header[:7]] + f["embedding"] + [p["label"]]
        # probabilities were rounded to 6 places; renormalise so each row still sums to 1
        proba = np.asarray(p["probabilities"])
        values += (proba / proba.sum()).tolist()
        lines.append(",".join(str(v) for v in values))
    return "\n".join(lines) + "\n"
