"""A large reference upload: how long, and how much memory the server needs.

Writes a CSV of about ``--megabytes`` MB (numeric and categorical features, a 16-dimensional
embedding as ``emb_0 .. emb_15``), starts one real ``tidewatch serve`` on SQLite, and uploads
it twice: once with a wrong column name (it must be refused fast and small), once as it is.
For each: the answer, the seconds to it, and the server's peak resident memory (VmHWM), beside
the file's size. Numbers are from one run on a shared machine.

    python benchmarks/reference_upload.py               # 200 MB
    python benchmarks/reference_upload.py --megabytes 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from serve_process import tidewatch_serve

BIN = Path(sys.executable).parent
DIM = 16
SPEC = {
    "name": "plankton",
    "features": [
        {"name": "brightness", "kind": "numeric"},
        {"name": "contrast", "kind": "numeric"},
        {"name": "camera", "kind": "categorical"},
        {"name": "emb", "kind": "vector", "dim": DIM},
    ],
    "output": {"task": "classification", "classes": ["copepod", "diatom"]},
}


def write_csv(path: Path, megabytes: float, *, first_column: str = "brightness") -> int:
    """A reference CSV of about ``megabytes`` MB; returns its row count."""
    rng = np.random.default_rng(0)
    header = ",".join([first_column, "contrast", "camera", *(f"emb_{j}" for j in range(DIM))])
    rows = 0
    with path.open("w") as out:
        out.write(header + "\n")
        while out.tell() < megabytes * 2**20:
            block = rng.normal(size=(20_000, 2 + DIM)).round(5)
            cams = rng.choice(["cam1", "cam2", "cam3"], size=20_000)
            lines = (
                f"{r[0]},{r[1]},{c},{','.join(map(str, r[2:]))}"
                for r, c in zip(block.tolist(), cams, strict=True)
            )
            out.write("\n".join(lines) + "\n")
            rows += 20_000
    return rows


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def upload(path: Path, megabytes: float) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        tidewatch_serve(f"sqlite:///{folder}/tidewatch.db", 19000 + os.getpid() % 1000) as served,
    ):
        proc, base, key = served.proc, served.url, served.key
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
        httpx.post(f"{base}/api/v1/models", json=SPEC, headers=headers).raise_for_status()
        idle = peak_mb(proc.pid)
        print(f"server idle: {idle:,.0f} MB resident (peak so far)\n")
        print("| upload | file MB | answer | seconds | server peak RSS MB |")
        print("|---|---:|---|---:|---:|")
        wrong = path.with_name("wrong.csv")
        write_csv(wrong, megabytes, first_column="weight")
        for label, file in (("wrong column name", wrong), ("valid reference", path)):
            began = time.perf_counter()
            with file.open("rb") as body:
                answer = httpx.post(
                    f"{base}/api/v1/models/plankton/reference",
                    content=body,
                    headers=headers,
                    timeout=None,
                )
            seconds = time.perf_counter() - began
            size = file.stat().st_size / 2**20
            what = f"{answer.status_code} {answer.text[:60]}"
            peak = peak_mb(proc.pid)
            print(f"| {label} | {size:,.0f} | {what} | {seconds:,.1f} | {peak:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference.csv"
        began = time.perf_counter()
        rows = write_csv(path, args.megabytes)
        print(
            f"{rows:,} rows, {path.stat().st_size / 2**20:,.0f} MB "
            f"(written in {time.perf_counter() - began:.0f} s)"
        )
        upload(path, args.megabytes)


if __name__ == "__main__":
    main()
