"""A tiny fixed-weight torch image classifier served by DEEPaaS, monitored with one line (the
last one).

The network averages each colour channel and maps the three means to two classes with fixed
weights: reddish images are ``copepod``, the others ``diatom``. Its input is an uploaded image,
as in the platform's plankton modules.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from PIL import Image
from webargs import fields

CLASSES = ("copepod", "diatom")
NET = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
with torch.no_grad():
    NET[2].weight.copy_(torch.tensor([[4.0, -2.0, -2.0], [-4.0, 2.0, 2.0]]))
    NET[2].bias.zero_()
NET.eval()


def get_metadata() -> dict[str, Any]:
    return {"name": "tw-deepaas-test", "description": "fixed-weight colour classifier"}


def get_predict_args() -> dict[str, Any]:
    return {
        "image": fields.Field(
            required=True,
            metadata={"type": "file", "location": "form", "description": "an image"},
        )
    }


def probabilities(data: bytes) -> list[float]:
    """The network's class probabilities for an encoded image (the test checks against this)."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        p = torch.softmax(NET(x), dim=1)[0]
    return [float(v) for v in p]


def predict(**kwargs: Any) -> dict[str, Any]:
    with open(kwargs["image"].filename, "rb") as file:
        p = probabilities(file.read())
    return {"label": CLASSES[int(np.argmax(p))], "probabilities": p}


if os.environ.get("TW_TEST_UNMONITORED") != "1":  # the benchmark's baseline leaves it out
    from collectors.deepaas import monitored

    predict = monitored(predict)  # the one line a module author adds
