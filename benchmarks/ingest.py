"""Ingest throughput of one `tidewatch serve` process, on SQLite and on PostgreSQL.

A separate client process posts batches of 1,000 records (32 numeric features, probabilities
over 10 classes) over HTTP, with a few requests in flight, and reports records/s and the p50 and
p99 latency of a batch. Request bodies are built before the clock starts, so the client's JSON
encoding is not measured. Not a test: numbers depend on the machine; run it with
`make bench-ingest` or `python benchmarks/ingest.py --batches 200`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

N_FEATURES, N_CLASSES, BATCH = 32, 10, 1000
CLASSES = [f"class_{i}" for i in range(N_CLASSES)]
SPEC = {
    "name": "bench",
    "features": [{"name": f"x{j}", "kind": "numeric"} for j in range(N_FEATURES)],
    "output": {"task": "classification", "classes": CLASSES},
}
PG_ADMIN = os.environ.get("TIDEWATCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_bodies(n_batches: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    bodies = []
    for b in range(n_batches):
        x = rng.normal(size=(BATCH, N_FEATURES)).round(6)
        logits = rng.normal(size=(BATCH, N_CLASSES))
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        records = [
            {
                "id": f"b{b}-{i}",
                "features": {f"x{j}": float(x[i, j]) for j in range(N_FEATURES)},
                "prediction": {"probabilities": proba[i].tolist()},
            }
            for i in range(BATCH)
        ]
        bodies.append(json.dumps({"records": records}).encode())
    return bodies


def client(url: str, key: str, n_batches: int, concurrency: int) -> None:
    """Runs in its own process; prints one JSON line with the measurements."""
    bodies = make_bodies(n_batches + concurrency)
    warmup, bodies = bodies[:concurrency], bodies[concurrency:]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for body in warmup:
            http.post("/api/v1/models/bench/telemetry", content=body).raise_for_status()
        queue = list(bodies)

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                answer = http.post("/api/v1/models/bench/telemetry", content=body)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if answer.status_code != 200 or answer.json()["accepted"] != BATCH:
                        errors.append(answer.text[:200])

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    body_kb = statistics.mean(len(b) for b in bodies) / 1024
    print(json.dumps({"wall": wall, "latencies": latencies, "errors": errors, "body_kb": body_kb}))


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("tidewatch serve exited early")
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("tidewatch serve did not become ready")


def run_backend(name: str, database_url: str, n_batches: int, concurrency: int) -> dict[str, float]:
    bin_dir = Path(sys.executable).parent
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "TIDEWATCH_DATABASE_URL": database_url,
        "TIDEWATCH_PORT": str(port),
        "TIDEWATCH_LOG_LEVEL": "warning",
    }
    key = subprocess.run(
        [str(bin_dir / "tidewatch"), "keys", "create", "--scope", "admin"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = subprocess.Popen([str(bin_dir / "tidewatch"), "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server)
        httpx.post(
            f"{url}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {key}"}
        ).raise_for_status()
        out = subprocess.run(
            [sys.executable, __file__, "--client", url, key, str(n_batches), str(concurrency)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        server.terminate()
        server.wait(timeout=60)
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"{name}: {len(result['errors'])} failed batches: {result['errors'][0]}")
    lat = sorted(result["latencies"])
    return {
        "records_per_s": n_batches * BATCH / result["wall"],
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "body_kb": result["body_kb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100, help="timed batches per backend")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            tmp = tempfile.mkdtemp(prefix="tw-bench-")
            rows.append(
                (
                    "SQLite",
                    run_backend(
                        "sqlite", f"sqlite:///{tmp}/bench.db", args.batches, args.concurrency
                    ),
                )
            )
        else:
            import psycopg

            db = f"tw_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
            try:
                url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
                rows.append(
                    ("PostgreSQL", run_backend("postgresql", url, args.batches, args.concurrency))
                )
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(
        f"\ningest: {args.batches} batches x {BATCH} records ({N_FEATURES} numeric features, "
        f"{N_CLASSES} class probabilities), {args.concurrency} in flight, one server process"
    )
    print(
        f"{'backend':<12}{'records/s':>12}{'p50 batch ms':>14}{'p99 batch ms':>14}{'body kB':>10}"
    )
    for name, r in rows:
        print(
            f"{name:<12}{r['records_per_s']:>12,.0f}{r['p50_ms']:>14.1f}{r['p99_ms']:>14.1f}{r['body_kb']:>10.0f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
