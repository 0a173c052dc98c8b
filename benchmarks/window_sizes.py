"""What one window costs the numeric default at several pairs of sizes, beside KS and AD.

    DO_NOT_TRACK=1 .venv/bin/python benchmarks/window_sizes.py [--features 50] [--quick]

``benchmarks/cycle.py`` gives every model the same sizes (2,000 against 2,000 rows), where KS's
exact p-value has a closed form and ``ks_weighted_ks`` computes its p-value table once for all
models. Real monitors differ: a reference of any size, windows by time whose size changes every
run, windows much smaller than their reference. Per pair of sizes, each test is fitted on a
reference of independent normal columns and scores one unchanged window twice: ``first`` with
``ks_weighted_ks``'s table cache empty (what the first window of a new pair of sizes costs),
``again`` after it (what every later window of that pair costs). ``ks`` is the registry's KS
(exact up to 10,000 rows a side, as scipy's ``ks_2samp``: the numeric default before
Anderson-Darling), ``anderson`` the default before ``ks_weighted_ks``. One run, one thread;
the machine is shared and noisy, so read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("DO_NOT_TRACK", "1")
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from detectors.registry import build  # noqa: E402
from detectors.univariate import weighted_ks_null  # noqa: E402

# (reference rows, window rows): small windows, equal sizes (cycle.py's), a larger reference,
# sizes that differ (a window by time), windows above the weighted statistic's 2,000 rows
SIZES = [(900, 200), (10_000, 50), (2_000, 2_000), (5_000, 1_000), (5_000, 4_000), (20_000, 19_000)]
TESTS = ["ks", "anderson", "ks_weighted_ks"]


def seconds(name: str, reference: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """One fit, then the first score (empty table cache) and a second one."""
    test = build(name, {}, device="cpu").fit(reference)
    weighted_ks_null._table.cache_clear()
    start = time.perf_counter()
    test.score(window)
    first = time.perf_counter() - start
    start = time.perf_counter()
    test.score(window)
    return first, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="the two smallest pairs only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = Table(title=f"one window of {args.features} unchanged features, ms (first / again)")
    table.add_column("reference vs window rows")
    for name in TESTS:
        table.add_column(name, justify="right")
    table.add_column("ks_weighted_ks / ks, again", justify="right")
    rng = np.random.default_rng(0)
    for n, m in SIZES[:2] if args.quick else SIZES:
        reference, window = rng.normal(size=(n, args.features)), rng.normal(size=(m, args.features))
        spent = {name: seconds(name, reference, window) for name in TESTS}
        cells = [f"{first * 1e3:,.1f} / {again * 1e3:,.1f}" for first, again in spent.values()]
        ratio = spent["ks_weighted_ks"][1] / spent["ks"][1]
        table.add_row(f"{n:,} vs {m:,}", *cells, f"{ratio:.2f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
