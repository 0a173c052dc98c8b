"""What monitoring costs a deployed module: latency of ``TelemetryClient.log()`` in the caller's
thread, and the latency it adds to a DEEPaaS predict call.

    .venv/bin/python benchmarks/collector_overhead.py

Part 1 calls ``log()`` in a loop while the client's thread batches and posts to a real
``tidewatch serve`` process (SQLite, same 2-core machine) and reports p50 / p99 / max per
call. Part 2 (when
``deepaas`` is installed) times a DEEPaaS predict call of the test module (a tiny torch image
classifier, a 256 x 256 PNG upload) with and without the one-line integration
(``collectors.deepaas``). One run; targets: p99 of ``log()`` under 50
microseconds, under 1% added to a predict call.
"""

from __future__ import annotations

import io
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
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from collectors import TelemetryClient  # noqa: E402
from collectors.image import FEATURES  # noqa: E402
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
    "features": [{"name": f"image.{n}", "kind": "numeric"} for n in FEATURES],
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


def plankton_png(side: int) -> bytes:
    """A side x side RGB PNG of noise, the size of a plankton camera crop."""
    pixels = np.random.default_rng(side).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def deepaas_overhead(n: int = 600, side: int = 256) -> list[tuple[str, ...]]:
    """The same image module (a tiny torch classifier) served four times: twice plain (the
    second one shows how far two identical servers differ in one run: the noise floor), once
    monitored with every call described, once monitored with ``TIDEWATCH_SAMPLER=0.1``. Requests
    go round the four in a rotating order, so that drift in the machine's load hits all alike."""
    if not (Path(sys.executable).parent / "deepaas-run").exists():
        return [("DEEPaaS predict call", "-", "-", "-", "not run: deepaas is not installed")]
    folder = tempfile.mkdtemp()
    proc, url, admin = serve(folder, DEEPAAS_SPEC)
    watched = {
        "TIDEWATCH_URL": url,
        "TIDEWATCH_KEY": admin,
        "TIDEWATCH_MODEL": "twtest",
        "TIDEWATCH_SPOOL_DIR": f"{folder}/spool",
    }
    variants = {
        "plain": {"TW_TEST_UNMONITORED": "1"},
        "plain again (noise floor)": {"TW_TEST_UNMONITORED": "1"},
        "monitored, every call": watched,
        "monitored, TIDEWATCH_SAMPLER=0.1": {**watched, "TIDEWATCH_SAMPLER": "0.1"},
    }
    servers = [_start_deepaas(env) for env in variants.values()]
    timings = np.empty((len(servers), n))
    try:
        with httpx.Client(timeout=60) as http:
            image = {"image": ("crop.png", plankton_png(side), "image/png")}
            for _, predict_url in servers:
                for _ in range(20):  # warm the worker processes (and create the client)
                    http.post(predict_url, files=image)
            for i in range(n):
                for k in range(len(servers)):
                    which = (i + k) % len(servers)  # rotate which goes first
                    start = time.perf_counter()
                    http.post(servers[which][1], files=image).raise_for_status()
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
    base = float(np.median(timings[0]))
    rows = []
    for k, name in enumerate(variants):
        t = timings[k]
        added = "" if k == 0 else f"p50 {(np.median(t) - base) / base:+.1%} vs plain"
        rows.append(
            (
                f"DEEPaaS predict, {side}x{side} PNG, {name}",
                f"{np.median(t):.2f} ms",
                f"{np.percentile(t, 99):.2f} ms",
                f"{t.max():.1f} ms",
                added + (" (target < 1%)" if k == 2 else ""),
            )
        )
    rows.append((f"records stored from {2 * (n + 20)} monitored calls", str(stored), "", "", ""))
    return rows


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
