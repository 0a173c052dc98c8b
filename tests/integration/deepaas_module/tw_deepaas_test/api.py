"""A fixed-weight classifier served by DEEPaaS, monitored with one line (the last one)."""

from __future__ import annotations

import math
import os
from typing import Any

from webargs import fields

WEIGHTS = (1.5, -2.0, 0.5)


def get_metadata() -> dict[str, Any]:
    return {"name": "tw-deepaas-test", "description": "logistic model over three numbers"}


def get_predict_args() -> dict[str, Any]:
    return {
        name: fields.Float(required=True, metadata={"description": f"input {name}"})
        for name in ("x1", "x2", "x3")
    }


def predict(**kwargs: Any) -> dict[str, Any]:
    z = sum(w * float(kwargs[name]) for w, name in zip(WEIGHTS, ("x1", "x2", "x3"), strict=True))
    p = 1 / (1 + math.exp(-z))
    return {"label": "copepod" if p >= 0.5 else "diatom", "probabilities": [p, 1 - p]}


if os.environ.get("TW_TEST_UNMONITORED") != "1":  # the benchmark's baseline leaves it out
    from collectors.deepaas import monitored

    predict = monitored(predict)  # the one line a module author adds
