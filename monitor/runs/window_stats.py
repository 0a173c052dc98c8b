"""A few numbers that summarise a run's window for people: the class mix of the predictions,
their mean confidence, the mean predicted value. Stored with the run (``window_stats``) so
dashboards read them without decoding telemetry."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from monitor.spec.model import ModelSpec


def window_stats(table: pa.Table, spec: ModelSpec) -> dict[str, float]:
    """Summaries of ``table`` (the window's records) for the model's task.

    >>> from monitor.spec.model import ModelSpec
    >>> spec = ModelSpec.model_validate({"name": "m",
    ...     "features": [{"name": "x", "kind": "numeric"}],
    ...     "output": {"task": "classification", "classes": ["a", "b"]}})
    >>> t = pa.table({"p.label": ["a", "a", "b", None], "p.proba": [[0.9, 0.1], [0.6, 0.4],
    ...     [0.2, 0.8], None]})
    >>> {k: round(v, 3) for k, v in window_stats(t, spec).items()}
    {'class_ratio.a': 0.667, 'class_ratio.b': 0.333, 'confidence_mean': 0.767}
    """
    task = spec.output.task
    out: dict[str, float] = {}
    if task == "classification":
        labels = table.column("p.label").drop_null().to_pylist()
        if labels:
            values, counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
            share = dict(zip(values.tolist(), (counts / counts.sum()).tolist(), strict=True))
            for name in spec.output.classes:
                out[f"class_ratio.{name}"] = float(share.get(name, 0.0))
        proba = table.column("p.proba").drop_null()
        if len(proba):
            matrix = np.asarray(proba.to_pylist(), dtype=np.float64)
            out["confidence_mean"] = float(matrix.max(axis=1).mean())
    elif task == "regression":
        values = table.column("p.value").drop_null().to_numpy()
        if len(values):
            out["prediction_mean"] = float(np.mean(values))
    return out
