"""What runs inside a deployed module: the telemetry client, sampling, the on-disk spool,
output adapters, image features and the DEEPaaS / ASGI integrations.

Installed as the ``tidewatch-client`` distribution, light on purpose: it needs httpx and numpy
only, never imports ``monitor`` or torch, and runs on Python 3.9+. Pillow (``[image]``) and
prometheus-client (``[metrics]``) are imported only when the feature that needs them is used;
the wire schema's pydantic models (``Record``, ``TelemetryBatch``, ...) only when asked for
(``[schema]``; the server always has them).

Example (in a model server)::

    from collectors import TelemetryClient, adapters

    client = TelemetryClient("http://tidewatch:8000", "plankton", key)
    ...
    client.log({"brightness": 0.42}, adapters.classification(probabilities, classes))
"""

from __future__ import annotations

from typing import Any

from collectors import adapters
from collectors.client import COUNTERS, TelemetryClient

__version__ = "0.1.0.dev0"

# the wire schema needs pydantic: imported on first use, so a module without pydantic (or with
# pydantic 1) can still send telemetry
_WIRE = ("Box", "Label", "LabelBatch", "Prediction", "Record", "TelemetryBatch")


def __getattr__(name: str) -> Any:
    if name in _WIRE:
        from collectors import wire

        return getattr(wire, name)
    raise AttributeError(f"module 'collectors' has no attribute {name!r}")


__all__ = [
    "COUNTERS",
    "Box",
    "Label",
    "LabelBatch",
    "Prediction",
    "Record",
    "TelemetryBatch",
    "TelemetryClient",
    "__version__",
    "adapters",
]
