"""The collectors' own health as Prometheus metrics in the host application's registry.

Only for hosts that already use prometheus-client (imported here lazily; the collectors never
require it). One collector per registry reports every live :class:`TelemetryClient`:

- ``tidewatch_collector_records_total{model, outcome}``: records by outcome (logged,
  sampled_out, dropped, sent, duplicates, spooled, spool_dropped, rejected, failed; labels
  count in these too, and in labels_logged and labels_sent);
- ``tidewatch_collector_spool_records{model}``: records (and labels) waiting in the spool.

>>> # from collectors.metrics import register; register(client)  # default registry
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from collectors.client import COUNTERS, TelemetryClient

_clients: weakref.WeakSet[TelemetryClient] = weakref.WeakSet()
_registered: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


class _ClientsCollector:
    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        records = CounterMetricFamily(
            "tidewatch_collector_records",
            "Records handled by Tidewatch telemetry clients, by outcome.",
            labels=["model", "outcome"],
        )
        spool = GaugeMetricFamily(
            "tidewatch_collector_spool_records",
            "Records waiting in the telemetry client's on-disk spool.",
            labels=["model"],
        )
        totals: dict[tuple[str, str], int] = {}
        waiting: dict[str, int] = {}
        for client in list(_clients):
            stats = client.stats
            for outcome in COUNTERS:
                key = (client.model, outcome)
                totals[key] = totals.get(key, 0) + stats[outcome]
            waiting[client.model] = waiting.get(client.model, 0) + stats["spool_waiting"]
        for (model, outcome), value in sorted(totals.items()):
            records.add_metric([model, outcome], value)
        for model, value in sorted(waiting.items()):
            spool.add_metric([model], value)
        yield records
        yield spool


def register(client: TelemetryClient, registry: Any = None) -> None:
    """Report ``client`` in ``registry`` (prometheus-client's default registry if None)."""
    try:
        from prometheus_client import REGISTRY
    except ImportError as exc:
        raise ImportError("collectors.metrics needs prometheus-client in the host app") from exc
    target = REGISTRY if registry is None else registry
    with _lock:
        _clients.add(client)
        if target not in _registered:
            target.register(_ClientsCollector())
            _registered.add(target)
