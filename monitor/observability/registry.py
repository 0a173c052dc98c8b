"""One ``collect()`` over this process's metrics and the results in the database."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from monitor.observability.results import ResultsCollector
from monitor.observability.service import REGISTRY

__all__ = ["CONTENT_TYPE_LATEST", "Exposition"]


class Exposition(Collector):
    """What ``/metrics`` serves: the service registry, then the results collector."""

    def __init__(self, results: ResultsCollector) -> None:
        self.results = results

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        yield from self.results.collect()

    def render(self) -> bytes:
        return generate_latest(self)
