"""What runs inside a deployed module: the telemetry client, sampling, the on-disk spool,
output adapters, image features and the DEEPaaS / ASGI integrations.

Light on purpose: httpx, numpy and pydantic only; never imports ``monitor`` or torch (Pillow and
prometheus-client only when the feature that needs them is used).

Example (in a model server)::

    from collectors import TelemetryClient, adapters

    client = TelemetryClient("http://tidewatch:8000", "plankton", key)
    ...
    client.log({"brightness": 0.42}, adapters.classification(probabilities, classes))
"""

from collectors import adapters
from collectors.client import COUNTERS, TelemetryClient
from collectors.wire import Box, Label, LabelBatch, Prediction, Record, TelemetryBatch

__all__ = [
    "COUNTERS",
    "Box",
    "Label",
    "LabelBatch",
    "Prediction",
    "Record",
    "TelemetryBatch",
    "TelemetryClient",
    "adapters",
]
