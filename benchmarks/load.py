"""Ingest under load: one real ``tidewatch serve`` process, many clients at once.

For PostgreSQL (a fresh database on 127.0.0.1:5432, or TIDEWATCH_BENCH_PG) and SQLite, at 1, 16,
64 and 256 concurrent clients, each posting batches of ``--batch`` records for ``--seconds``
seconds (re-sending after a 503's Retry-After, as the collectors client does), it prints:
records/s stored, p50/p99 latency of the accepted batches, 503s (shed by admission control and
retried), errors (timeouts, other 5xx, connection errors: the target is none), the slowest
``/healthz`` answer seen meanwhile, and the server's resident memory at the start and the end.

    python benchmarks/load.py                 # both backends, 1000-record batches
    python benchmarks/load.py --backend sqlite --seconds 5

The clients run in this process (asyncio + httpx) on the same 2-core machine as the server,
so the figures are a floor for a server with the machine to itself. Numbers are from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from serve_process import tidewatch_serve

BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("TIDEWATCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SPEC = {
    "name": "plankton",
    "features": [
        {"name": "brightness", "kind": "numeric"},
        {"name": "contrast", "kind": "numeric"},
        {"name": "camera", "kind": "categorical"},
    ],
    "output": {"task": "classification", "classes": ["copepod", "diatom", "other"]},
}


def _rss_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak) in MB, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@contextmanager
def _database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/tidewatch.db"
        return
    name = f"tw_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _template(size: int) -> bytes:
    """One batch as JSON with the placeholder ``@@`` in every id: each request replaces it, so
    every record id is new while the client spends no time encoding (it shares the machine)."""
    rng = np.random.default_rng(size)
    records = [
        {
            "id": f"@@-{i}",
            "features": {
                "brightness": float(b),
                "contrast": float(c),
                "camera": "cam1" if i % 3 else "cam2",
            },
            "prediction": {"label": "copepod", "probabilities": [0.7, 0.2, 0.1]},
        }
        for i, (b, c) in enumerate(rng.random((size, 2)))
    ]
    return json.dumps({"records": records}).encode()


async def _client(
    http: httpx.AsyncClient,
    base: str,
    key: str,
    who: int,
    template: bytes,
    until: float,
    out: dict[str, Any],
) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    n = 0
    while time.monotonic() < until:
        body = template.replace(b"@@", f"c{who}n{n}".encode())
        n += 1
        while True:
            began = time.perf_counter()
            try:
                response = await http.post(
                    f"{base}/api/v1/models/plankton/telemetry", content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                out["errors"] += 1
                out["why"][type(exc).__name__] = out["why"].get(type(exc).__name__, 0) + 1
                break
            if response.status_code == 503 and "retry-after" in response.headers:
                out["shed"] += 1
                await asyncio.sleep(float(response.headers["retry-after"]))
                continue
            if response.status_code == 200:
                out["latency"].append(time.perf_counter() - began)
                out["records"] += response.json()["accepted"]
            else:
                out["errors"] += 1
                why = f"HTTP {response.status_code}"
                out["why"][why] = out["why"].get(why, 0) + 1
            break


def _probe_health(base: str, seconds: float) -> subprocess.Popen[str]:
    """Time /healthz from a process of its own: the clients' busy event loop would add its own
    delays to the measurement."""
    code = (
        "import sys, time, httpx\n"
        "base, until = sys.argv[1], time.monotonic() + float(sys.argv[2])\n"
        "worst, failed = 0.0, 0\n"
        "with httpx.Client(timeout=30) as http:\n"
        "    while time.monotonic() < until:\n"
        "        began = time.perf_counter()\n"
        "        try:\n"
        "            failed += http.get(base + '/healthz').status_code != 200\n"
        "        except httpx.HTTPError:\n"
        "            failed += 1\n"
        "        worst = max(worst, time.perf_counter() - began)\n"
        "        time.sleep(0.2)\n"
        "print(worst, failed)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, base, str(seconds)], stdout=subprocess.PIPE, text=True
    )


async def _level(base: str, key: str, clients: int, size: int, seconds: float) -> dict[str, Any]:
    template = _template(size)
    out: dict[str, Any] = {"records": 0, "latency": [], "shed": 0, "errors": 0, "why": {}}
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        began = time.monotonic()
        until = began + seconds
        await asyncio.gather(
            *(_client(http, base, key, who, template, until, out) for who in range(clients)),
        )
        out["elapsed"] = time.monotonic() - began
    return out


def run(backend: str, levels: list[int], size: int, seconds: float) -> list[str]:
    rows = []
    port = 18000 + os.getpid() % 1000
    with _database(backend) as url, tidewatch_serve(url, port) as served:
        base, proc, key = served.url, served.proc, served.key
        created = httpx.post(
            f"{base}/api/v1/models", json=SPEC, headers={"Authorization": f"Bearer {key}"}
        )
        created.raise_for_status()
        for clients in levels:
            rss_start, _ = _rss_mb(proc.pid)
            prober = _probe_health(base, seconds)
            out = asyncio.run(_level(base, key, clients, size, seconds))
            worst, failed = prober.communicate()[0].split()
            out["health_max"], out["errors"] = float(worst), out["errors"] + int(failed)
            rss_end, peak = _rss_mb(proc.pid)
            lat = np.array(out["latency"]) * 1000 if out["latency"] else np.array([np.nan])
            rows.append(
                f"| {backend} | {clients} | {out['records'] / out['elapsed']:,.0f} | "
                f"{np.percentile(lat, 50):,.0f} | {np.percentile(lat, 99):,.0f} | "
                f"{out['shed']} | {out['errors']} | {out['health_max'] * 1000:,.0f} | "
                f"{rss_start:,.0f} → {rss_end:,.0f} (peak {peak:,.0f}) |"
            )
            print(rows[-1] + (f" errors: {out['why']}" if out["why"] else ""), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--batch", type=int, default=1000, help="records per request")
    parser.add_argument("--seconds", type=float, default=30.0, help="per concurrency level")
    args = parser.parse_args()
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    levels = [int(x) for x in args.levels.split(",")]
    from monitor.settings import Settings  # the server's settings, as it reads them

    settings = Settings()
    knobs = ("request_threads", "db_pool_size", "max_in_flight", "keep_alive_seconds")
    print(
        f"{args.batch}-record batches, {args.seconds:.0f} s per level, one `tidewatch serve` "
        f"({', '.join(f'{k} {getattr(settings, k)}' for k in knobs)})\n"
    )
    print(
        "| backend | clients | records/s | p50 ms | p99 ms | 503 (retried) | errors "
        "| slowest /healthz ms | server RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for backend in backends:
        run(backend, levels, args.batch, args.seconds)


if __name__ == "__main__":
    main()
