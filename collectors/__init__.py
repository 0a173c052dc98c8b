"""What runs inside a deployed module: the telemetry client and the wire format.

Light on purpose: httpx and pydantic only; never imports ``monitor`` or torch.

Example (in a model server)::

    from collectors import TelemetryClient

    with TelemetryClient("http://tidewatch:8000", "plankton", key) as client:
        client.log({"brightness": 0.42}, {"label": "copepod", "probabilities": [0.9, 0.1]})
"""

from collectors.client import TelemetryClient
from collectors.wire import Box, Label, LabelBatch, Prediction, Record, TelemetryBatch

__all__ = [
    "Box",
    "Label",
    "LabelBatch",
    "Prediction",
    "Record",
    "TelemetryBatch",
    "TelemetryClient",
]
