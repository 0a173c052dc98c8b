"""Streaming concept-drift detectors on error streams with and without a change, one run.

    .venv/bin/python benchmarks/streaming.py [--streams 50] [--skip kswin]

For every streaming detector (frouros's with their defaults, and ``glr``, Tidewatch's own, with
its defaults), ``--streams`` seeded streams of each kind:

- **0/1 errors** (a classifier): rate 0.1, then 0.3 from value 1,500 on (3,000 values); the
  detectors that read 0/1 or [0, 1] values run only here;
- **absolute errors** (a regressor with Gaussian residuals): mean 0.1, then 0.3 from value
  1,500 on (the residuals' scale triples);
- and as many unchanged streams of 10,000 values of each kind (rate or mean 0.1 throughout).

Printed per detector and kind: the median delay (values from the change to the first drift at
or after it, over the streams where one came within the 1,500 values after the change), the
share of streams so detected, the share with a drift before the change, and the share of
unchanged streams with any drift (the false alarms). The seeds are fixed; the streams are the
same for every detector.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import date

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# ``detectors`` package it measures.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402 (after the sys.path fix above)

from detectors.streaming import STREAMING_DETECTORS, make_streaming  # noqa: E402

CHANGE, AFTER, UNCHANGED = 1500, 1500, 10_000
ZERO_ONE_ONLY = {"ddm", "eddm", "hddm_a", "hddm_w"}  # 0/1 or [0, 1] values only


def zero_one(seed: int, n: int, change: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = np.full(n, 0.1)
    if change is not None:
        rate[change:] = 0.3
    return (rng.random(n) < rate).astype(np.float64)


def absolute(seed: int, n: int, change: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.full(n, 0.1 * np.sqrt(np.pi / 2))  # E|N(0, s)| = s * sqrt(2 / pi) = 0.1
    if change is not None:
        scale[change:] *= 3
    return np.abs(rng.normal(0.0, scale))


KINDS: dict[str, Callable[[int, int, int | None], np.ndarray]] = {
    "0/1 errors": zero_one,
    "absolute errors": absolute,
}


def measure(method: str, kind: str, streams: int) -> dict[str, float]:
    make = KINDS[kind]
    delays, early, alarms = [], 0, 0
    for i in range(streams):
        params = {"seed": i} if method == "kswin" else {}
        drifts = make_streaming(method, **params).update_many(make(i, CHANGE + AFTER, CHANGE))
        early += bool((drifts < CHANGE).any())
        after = drifts[drifts >= CHANGE]
        if len(after):
            delays.append(int(after[0]) - CHANGE)
        quiet = make(10_000 + i, UNCHANGED, None)
        alarms += len(make_streaming(method, **params).update_many(quiet)) > 0
    return {
        "median delay": float(np.median(delays)) if delays else float("nan"),
        "detected": len(delays) / streams,
        "alarm before change": early / streams,
        "false alarms (unchanged)": alarms / streams,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # scipy's exact-KS fallback warnings under KSWIN
    print(
        f"# {date.today()}: {args.streams} streams per cell, change 0.1 -> 0.3 at value "
        f"{CHANGE}, unchanged streams of {UNCHANGED} values; one run"
    )
    print()
    print(
        "| detector | errors | median delay | detected | alarm before change | "
        "false alarms, unchanged | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for method in STREAMING_DETECTORS:
        if method in args.skip:
            continue
        for kind in KINDS:
            if kind != "0/1 errors" and method in ZERO_ONE_ONLY:
                continue
            start = time.perf_counter()
            row = measure(method, kind, args.streams)
            seconds = time.perf_counter() - start
            print(
                f"| {method} | {kind} | {row['median delay']:.0f} | {row['detected']:.0%} | "
                f"{row['alarm before change']:.0%} | {row['false alarms (unchanged)']:.0%} | "
                f"{seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
