"""What monitoring costs a deployed module: latency of ``TelemetryClient.log()`` in the caller's
thread, and the latency it adds to a DEEPaaS predict call.

    .venv/bin/python benchmarks/collector_overhead.py

Part 1 calls ``log()`` in a loop while the client's thread batches and posts to a real
``tidewatch serve`` process (SQLite, same 2-core machine) and reports p50 / p99 / max per
call. Part 2 (when
``deepaas`` is installed) times a DEEPaaS predict call of a small test module with and without
the one-line integration (``collectors.deepaas``). One run; targets: p99 of ``log()`` under 50
microseconds, under 1% added to a predict call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/detectors.py would
# shadow the ``detectors`` package that ``monitor`` imports.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from collectors import TelemetryClient  # noqa: E402
from monitor.server import free_port  # noqa: E402

SPEC = {
    "name": "plankton",
    "features": [{"name": f"f{i}", "kind": "numeric"} for i in range(32)],
    "output": {"task": "classification", "classes": [f"c{i}" for i in range(10)]},
}
console = Console(width=120)


def serve(folder: str, spec: dict[str, object]) -> tuple[subprocess.Popen[bytes], str, str]:
    """A real ``tidewatch serve`` in its own process (as in production), and an admin key."""
    port = free_port()
    env = {
        **os.environ,
        "TIDEWATCH_DATABASE_URL": f"sqlite:///{folder}/bench.db",
        "TIDEWATCH_PORT": str(port),
    }
    tidewatch = str(Path(sys.executable).parent / "tidewatch")
    created = subprocess.run(
        [tidewatch, "keys", "create", "--scope", "admin"], env=env, capture_output=True, text=True
    )
    admin = created.stdout.strip().split()[-1]
    proc = subprocess.Popen([tidewatch, "serve"], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    httpx.post(
        f"{url}/api/v1/models", json=spec, headers={"Authorization": f"Bearer {admin}"}
    ).raise_for_status()
    return proc, url, admin


def log_latency(n: int = 50_000) -> np.ndarray:
    folder = tempfile.mkdtemp()
    proc, url, admin = serve(folder, SPEC)
    try:
        client = TelemetryClient(url, "plankton", admin, spool_dir=Path(folder) / "spool")
        rng = np.random.default_rng(0)
        rows = rng.normal(size=(n, 32))
        features = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in rows]
        probabilities = rng.dirichlet(np.ones(10), size=n).tolist()
        timings = np.empty(n)
        for i in range(n):
            prediction = {"label": "c1", "probabilities": probabilities[i]}
            start = time.perf_counter_ns()
            client.log(features[i], prediction)
            timings[i] = time.perf_counter_ns() - start
            if i % 1000 == 999:
                time.sleep(0.01)  # a model server between bursts of requests
        client.close(timeout=120)
        console.log(f"client counters: {client.stats}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return timings / 1000.0  # microseconds


DEEPAAS_SPEC = {
    "name": "twtest",
    "features": [{"name": n, "kind": "numeric"} for n in ("x1", "x2", "x3")],
    "output": {"task": "classification", "classes": ["copepod", "diatom"]},
}
MODULE_DIR = Path(__file__).resolve().parents[1] / "tests" / "integration" / "deepaas_module"


def _start_deepaas(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    deepaas = str(Path(sys.executable).parent / "deepaas-run")
    proc = subprocess.Popen(
        [deepaas, "--listen-ip", "127.0.0.1", "--listen-port", str(port), "--nowarm"],
        env={**os.environ, **env, "PYTHONPATH": str(MODULE_DIR)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/models/").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}/v2/models/twtest/predict/"


def deepaas_overhead(n: int = 1000) -> list[tuple[str, ...]]:
    """The same module served twice, with and without the integration line; requests alternate
    between the two so that drift in the machine's load hits both alike."""
    if not (Path(sys.executable).parent / "deepaas-run").exists():
        return [("DEEPaaS predict call", "-", "-", "-", "not run: deepaas is not installed")]
    folder = tempfile.mkdtemp()
    proc, url, admin = serve(folder, DEEPAAS_SPEC)
    watched_env = {
        "TIDEWATCH_URL": url,
        "TIDEWATCH_KEY": admin,
        "TIDEWATCH_MODEL": "twtest",
        "TIDEWATCH_SPOOL_DIR": f"{folder}/spool",
    }
    servers = [_start_deepaas({"TW_TEST_UNMONITORED": "1"}), _start_deepaas(watched_env)]
    timings = np.empty((2, n))
    try:
        with httpx.Client(timeout=60) as http:
            for _, predict_url in servers:
                for _ in range(20):  # warm the worker processes (and create the client)
                    http.post(predict_url, params={"x1": 0.1, "x2": 0.2, "x3": 0.3})
            for i in range(n):
                params = {"x1": i / n, "x2": 0.5, "x3": 0.25}
                for which in (i % 2, 1 - i % 2):  # alternate which goes first
                    start = time.perf_counter()
                    http.post(servers[which][1], params=params).raise_for_status()
                    timings[which, i] = (time.perf_counter() - start) * 1e3
        time.sleep(3)  # the worker's client sends within its flush interval (1 s)
        stored = httpx.get(
            f"{url}/api/v1/models/twtest", headers={"Authorization": f"Bearer {admin}"}
        ).json()["records"]
    finally:
        for server, _ in servers:
            server.terminate()
            server.wait(timeout=30)
        proc.terminate()
        proc.wait(timeout=30)
    plain, watched = timings
    added = (np.median(watched) - np.median(plain)) / np.median(plain)
    return [
        (
            f"DEEPaaS predict, plain ({n} calls)",
            f"{np.median(plain):.3f} ms",
            f"{np.percentile(plain, 99):.2f} ms",
            f"{plain.max():.1f} ms",
            "",
        ),
        (
            f"DEEPaaS predict, monitored ({stored} records stored)",
            f"{np.median(watched):.3f} ms",
            f"{np.percentile(watched, 99):.2f} ms",
            f"{watched.max():.1f} ms",
            f"added to p50: {added:+.1%} (target < 1%)",
        ),
    ]


def main() -> None:
    micros = log_latency()
    table = Table(title="Collector overhead (one run)")
    for column in ("measure", "p50", "p99", "max", "target"):
        table.add_column(column)
    table.add_row(
        "log() in the caller's thread, 50,000 calls",
        f"{np.percentile(micros, 50):.1f} µs",
        f"{np.percentile(micros, 99):.1f} µs",
        f"{micros.max():.0f} µs",
        "p99 < 50 µs",
    )
    for row in deepaas_overhead():
        table.add_row(*row)
    console.print(table)
    console.print(f"python {sys.version.split()[0]}, pid {os.getpid()}")


if __name__ == "__main__":
    main()
