"""Label-free performance estimation: speed against NannyML, and error under covariate shift.

    .venv/bin/python benchmarks/performance_estimation.py [--quick]

NannyML is heavy (lightgbm, plotly, ...) and is not a dependency of Tidewatch; to include it,
install it in a separate environment and run this script from there (it finds this checkout
by its own path, no install of Tidewatch needed; NannyML 0.13.1 imports statsmodels without
declaring it):

    python3 -m venv /tmp/nml
    /tmp/nml/bin/pip install nannyml statsmodels 'numpy<2.2' torch==2.13.0
    /tmp/nml/bin/python benchmarks/performance_estimation.py

Table 1 (speed): the same reference (50,000 rows) and the same 50 chunks of 5,000 rows for
2, 3 and 5 classes; both libraries with their defaults, the model's own predictions given to
NannyML as ``y_pred`` and its cut (0.4 for two classes) to Tidewatch as ``threshold``. Seconds
to fit and to estimate every chunk, the ratio NannyML / Tidewatch, and the largest difference
of the estimates (the same method: expected accuracy, F1 and ROC AUC of isotonic-calibrated
probabilities). Each timing is one run.

Table 2 (error): a binary model whose calibration map ``P(y | score)`` differs between the
region of the reference and a region the current data move into (covariate shift the model
handles worse there than its scores say). Mean absolute error of the estimated accuracy
against the realized one over seeds, for CBPE and the importance-weighted CBPE, on unshifted
and on shifted windows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# ``detectors`` package it measures; the checkout's root is added so that an environment
# without Tidewatch installed (NannyML's) finds it.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML's usage telemetry
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import numpy as np  # noqa: E402 (after the sys.path fix above)

from detectors.performance.cbpe import CBPE  # noqa: E402 (after the sys.path fix above)
from detectors.performance.importance import (  # noqa: E402 (after the sys.path fix above)
    ImportanceWeightedCBPE,
)

METRICS = ("accuracy", "f1", "roc_auc")
BINARY_CUT = 0.4

try:  # optional: only in an environment where NannyML is installed
    import nannyml
    import pandas as pd

    NANNYML: str | None = None
except ImportError as exc:  # pragma: no cover - depends on the environment
    nannyml = None
    NANNYML = f"NannyML is not importable here ({exc}); its columns are left empty"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classifier_data(
    rng: np.random.Generator, n: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities of an overconfident model, its predictions and the true labels."""
    z = rng.normal(size=(n, n_classes)) * 1.2
    truth = softmax(z)
    labels = (rng.uniform(size=(n, 1)) > truth.cumsum(axis=1)).sum(axis=1)
    labels = labels.clip(max=n_classes - 1)
    proba = softmax(1.8 * z)
    binary = n_classes == 2
    predicted = (proba[:, 1] >= BINARY_CUT).astype(int) if binary else proba.argmax(axis=1)
    return proba, predicted, labels


def tidewatch_run(
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    chunks: list[np.ndarray],
    n_classes: int,
) -> tuple[np.ndarray, float, float]:
    proba, _, labels = ref
    scores = proba[:, 1] if n_classes == 2 else proba
    cbpe = CBPE(threshold=BINARY_CUT if n_classes == 2 else 0.5)
    _, fit_s = timed(lambda: cbpe.fit(scores, labels))

    def run() -> np.ndarray:
        return np.array([cbpe.estimate(c[:, 1] if n_classes == 2 else c).value for c in chunks])

    values, estimate_s = timed(run)
    return values, fit_s, estimate_s


def _frame(proba: np.ndarray, predicted: np.ndarray, labels: np.ndarray | None) -> Any:
    n_classes = proba.shape[1]
    data: dict[str, Any] = {"y_pred": predicted}
    if n_classes == 2:
        data["p"] = proba[:, 1]
    else:
        data.update({f"p{k}": proba[:, k] for k in range(n_classes)})
    if labels is not None:
        data["y_true"] = labels
    return pd.DataFrame(data)


def nannyml_run(
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    current: tuple[np.ndarray, np.ndarray],
    chunk_size: int,
) -> tuple[np.ndarray, float, float]:
    n_classes = ref[0].shape[1]
    binary = n_classes == 2
    estimator = nannyml.CBPE(
        y_pred_proba="p" if binary else {k: f"p{k}" for k in range(n_classes)},
        y_pred="y_pred",
        y_true="y_true",
        metrics=list(METRICS),
        chunk_size=chunk_size,
        problem_type="classification_binary" if binary else "classification_multiclass",
    )
    reference, analysis = _frame(*ref), _frame(*current, None)
    _, fit_s = timed(lambda: estimator.fit(reference))
    result, estimate_s = timed(lambda: estimator.estimate(analysis))
    frame = result.filter(period="analysis").to_df()
    values = np.column_stack([frame[(m, "value")].to_numpy() for m in METRICS])
    return values, fit_s, estimate_s


def speed_table(n_reference: int, n_chunks: int, chunk_size: int) -> None:
    print(
        f"\nTable 1: fit on {n_reference:,} rows, estimate {n_chunks} chunks of "
        f"{chunk_size:,} rows (seconds, one run)"
    )
    header = (
        "| classes | Tidewatch fit | Tidewatch estimate | NannyML fit | NannyML estimate "
        "| NannyML / Tidewatch (fit + estimate) | max abs difference (accuracy, F1, ROC AUC) |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|")
    for n_classes in (2, 3, 5):
        rng = np.random.default_rng(n_classes)
        ref = classifier_data(rng, n_reference, n_classes)
        proba, predicted, _ = classifier_data(rng, n_chunks * chunk_size, n_classes)
        chunks = [proba[i : i + chunk_size] for i in range(0, len(proba), chunk_size)]
        ours, fit_s, est_s = tidewatch_run(ref, chunks, n_classes)
        if nannyml is None:
            print(f"| {n_classes} | {fit_s:.2f} | {est_s:.2f} | - | - | - | - |")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs, nml_fit, nml_est = nannyml_run(ref, (proba, predicted), chunk_size)
        gap = np.max(np.abs(ours - theirs), axis=0)
        ratio = (nml_fit + nml_est) / (fit_s + est_s)
        print(
            f"| {n_classes} | {fit_s:.2f} | {est_s:.2f} | {nml_fit:.2f} | {nml_est:.2f} "
            f"| {ratio:.1f}x | {', '.join(f'{g:.1e}' for g in gap)} |"
        )
    if NANNYML:
        print(NANNYML)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def shifted_data(
    rng: np.random.Generator, n: int, shift: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, scores and labels: the model scores ``x1``; the labels follow ``x1`` less and
    less as ``x2`` passes 1.5, and ``shift`` moves ``x2`` there (covariate shift)."""
    x = np.column_stack([rng.normal(size=n), rng.normal(shift, 1.0, size=n)])
    slope = 3.0 / (1.0 + np.exp(2.0 * (x[:, 1] - 1.5))) + 0.3
    labels = (rng.uniform(size=n) < sigmoid(slope * x[:, 0])).astype(int)
    return x, sigmoid(2.0 * x[:, 0]), labels


def realized(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = (scores >= 0.5).astype(int)
    return np.array(
        [
            accuracy_score(labels, predicted),
            f1_score(labels, predicted),
            roc_auc_score(labels, scores),
        ]
    )


def error_table(n_seeds: int, n_reference: int, n_window: int) -> None:
    print(
        f"\nTable 2: mean absolute error against the realized metric, {n_seeds} seeds, "
        f"reference {n_reference:,} rows, windows of {n_window:,}"
    )
    print("| window | estimator | accuracy | F1 | ROC AUC | realized accuracy (mean) |")
    print("|---|---|---|---|---|---|")
    for shift, name in ((0.0, "unshifted"), (1.0, "x2 shifted by 1 sd"), (1.5, "by 1.5 sd")):
        errors: dict[str, list[np.ndarray]] = {"CBPE": [], "importance-weighted CBPE": []}
        truth = []
        for seed in range(n_seeds):
            rng = np.random.default_rng(seed)
            ref_x, ref_p, ref_y = shifted_data(rng, n_reference, 0.0)
            x, p, y = shifted_data(rng, n_window, shift)
            actual = realized(p, y)
            truth.append(actual[0])
            plain = CBPE().fit(ref_p, ref_y).estimate(p)
            weighted = ImportanceWeightedCBPE().fit(ref_p, ref_y, ref_x).estimate(p, x)
            errors["CBPE"].append(np.abs(plain.value - actual))
            errors["importance-weighted CBPE"].append(np.abs(weighted.value - actual))
        for estimator, found in errors.items():
            mae = np.mean(found, axis=0)
            print(
                f"| {name} | {estimator} | {mae[0]:.3f} | {mae[1]:.3f} | {mae[2]:.3f} "
                f"| {np.mean(truth):.3f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    args = parser.parse_args()
    if args.quick:
        speed_table(5_000, 5, 1_000)
        error_table(3, 5_000, 1_000)
    else:
        speed_table(50_000, 50, 5_000)
        error_table(20, 10_000, 3_000)


if __name__ == "__main__":
    main()
