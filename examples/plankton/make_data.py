"""Writes the example's two CSV files: ``reference.csv`` (what the model saw when it was
validated) and ``current.csv`` (production records after the cameras were swapped: darker
images, a new camera, fewer diatoms). Seeded, so the files are the same on every run.

    python examples/plankton/make_data.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CLASSES = ["copepod", "diatom", "detritus"]
DIM = 16
HERE = Path(__file__).parent


def _rows(n: int, rng: np.random.Generator, shifted: bool) -> list[list[object]]:
    brightness = rng.normal(0.42 if shifted else 0.55, 0.08, n).clip(0, 1)
    cameras = ["flowcam-2", "flowcam-3"] if shifted else ["flowcam-1", "flowcam-2"]
    camera = rng.choice(cameras, n)
    mix = [0.6, 0.1, 0.3] if shifted else [0.45, 0.35, 0.2]
    label = rng.choice(len(CLASSES), n, p=mix)
    embedding = rng.normal(0.0, 1.0, (n, DIM)) + 0.8 * np.eye(len(CLASSES), DIM)[label]
    logits = rng.normal(0.0, 1.0, (n, len(CLASSES))) + 2.5 * np.eye(len(CLASSES))[label]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return [
        [
            f"{'cur' if shifted else 'ref'}-{i:04d}",
            round(float(brightness[i]), 4),
            camera[i],
            *(round(float(v), 3) for v in embedding[i]),
            CLASSES[int(proba[i].argmax())],
            *(round(float(p), 4) for p in proba[i] / proba[i].sum()),
        ]
        for i in range(n)
    ]


def _write(path: Path, rows: list[list[object]]) -> None:
    header = ["id", "brightness", "camera", *(f"embedding_{j}" for j in range(DIM))]
    header += ["prediction", *(f"proba_{c}" for c in CLASSES)]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    rng = np.random.default_rng(2026)
    _write(HERE / "reference.csv", _rows(1000, rng, shifted=False))
    _write(HERE / "current.csv", _rows(400, rng, shifted=True))


if __name__ == "__main__":
    main()
