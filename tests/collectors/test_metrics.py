"""The client's counters in a host application's Prometheus registry."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from collectors import TelemetryClient
from collectors.metrics import register
from monitor.server import free_port


def test_counters_appear_in_the_hosts_registry(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    url = f"http://127.0.0.1:{free_port()}"  # down: records end in the spool
    clients = [
        TelemetryClient(
            url, "plankton", "k", flush_interval=0.01, max_retries=0, spool_dir=tmp_path / str(i)
        )
        for i in range(2)
    ]
    for client in clients:
        register(client, registry)  # two clients of one model: one series, summed
        for _ in range(3):
            client.log({"brightness": 0.5})
        client.close(timeout=10, drain_timeout=0)
    text = generate_latest(registry).decode()
    assert 'tidewatch_collector_records_total{model="plankton",outcome="logged"} 6.0' in text
    assert 'tidewatch_collector_records_total{model="plankton",outcome="spooled"} 6.0' in text
    assert 'tidewatch_collector_spool_records{model="plankton"} 6.0' in text
    assert 'outcome="sent"} 0.0' in text
