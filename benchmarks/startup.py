"""Start-up time of the command line and of ``tidewatch serve``, beside Python's own.

Prints one Markdown table: the median wall time of a few runs of each command, and its ratio to
``python -c "import httpx, sqlalchemy"`` (what any database-and-HTTP command line pays) and to
``python -c "import torch"``. ``models list`` and ``status`` run against a SQLite database this
script prepares in a temporary directory (one registered model); ``serve`` is timed from the
process start to the first answer of ``/healthz``, and to the first 200 of ``/readyz`` (the API
loaded). Targets (issue 17): ``models list`` and ``status`` within 1.5x of httpx + SQLAlchemy
and under a third of torch; ``/healthz`` under 3 s.

    python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
SPEC = {
    "name": "plankton",
    "features": [
        {"name": "brightness", "kind": "numeric"},
        {"name": "site", "kind": "categorical"},
    ],
    "output": {"task": "classification", "classes": ["copepod", "diatom"]},
}


def wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def serve_times(config: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from the start of ``tidewatch serve`` to /healthz, and to /readyz's 200."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    command = [str(BIN / "tidewatch"), "serve", "-c", str(config), "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    healthy: float | None = None
    try:
        while time.perf_counter() - started < 300:
            try:
                if healthy is None and httpx.get(f"{url}/healthz").status_code == 200:
                    healthy = time.perf_counter() - started
                if healthy is not None and httpx.get(f"{url}/readyz").status_code == 200:
                    return healthy, time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError("tidewatch serve did not become ready in 300 s")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median shown)")
    runs = parser.parse_args().runs
    py, tw = sys.executable, str(BIN / "tidewatch")
    with tempfile.TemporaryDirectory() as tmp:
        config, spec = Path(tmp) / "tidewatch.toml", Path(tmp) / "plankton.json"
        config.write_text(f'database_url = "sqlite:///{Path(tmp) / "tidewatch.db"}"\n')
        spec.write_text(json.dumps(SPEC))
        # Byte-code caches written, as an installed package has them: PYTHONDONTWRITEBYTECODE
        # (set in some development shells) would compile every changed module at every run
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["DO_NOT_TRACK"] = "1"
        for prepare in (["db", "upgrade"], ["models", "create", str(spec)]):
            subprocess.run(
                [tw, *prepare, "-c", str(config)], env=env, check=True, capture_output=True
            )
        commands = {
            "python -c pass": [py, "-c", "pass"],
            'python -c "import httpx, sqlalchemy"': [py, "-c", "import httpx, sqlalchemy"],
            'python -c "import torch"': [py, "-c", "import torch"],
            "tidewatch --help": [tw, "--help"],
            "tidewatch models list": [tw, "models", "list", "-c", str(config)],
            "tidewatch status": [tw, "status", "-c", str(config)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):  # round robin: a change in the machine's load hits all alike
            for name, command in commands.items():
                times[name].append(wall(command, env))
        served = [serve_times(config, env) for _ in range(max(1, runs // 2))]
    median = {name: statistics.median(t) for name, t in times.items()}
    median["tidewatch serve: first /healthz"] = statistics.median(h for h, _ in served)
    median["tidewatch serve: /readyz 200 (API loaded)"] = statistics.median(r for _, r in served)
    base = median['python -c "import httpx, sqlalchemy"']
    torch = median['python -c "import torch"']
    print(f"{runs} runs per command ({max(1, runs // 2)} of serve), median wall time\n")
    print("| command | seconds | x httpx + sqlalchemy | / torch |")
    print("|---|---:|---:|---:|")
    for name, seconds in median.items():
        print(f"| `{name}` | {seconds:.2f} | {seconds / base:.2f} | {seconds / torch:.2f} |")


if __name__ == "__main__":
    main()
