"""False alarms of every registry detector on exchangeable windows, the full grid, one run.

    .venv/bin/python benchmarks/calibration.py [--windows 2000] [--per-window 1000]
        [--vector-windows 1000] [--only ks mmd ...] [--quick] [--cost]

For every detector in the registry (and, for the distances, their permutation test with
``n_permutations="auto"``) and every kind of data its column kind takes, the share of
exchangeable windows the service would flag (:mod:`detectors.calibration`: BH over one
window's features, distances by their threshold), at alpha 0.05 and 0.01, beside the bound
``alpha + 2 sqrt(alpha (1 - alpha) / windows)``:

- numeric and categorical: ``--windows`` windows of 5 features scored side by side in one call
  at 200 reference rows against 100, and half as many at 1,000 against 1,000 (detectors without
  permutations); ``--per-window`` windows with one call each at 200 against 100 (those that
  draw permutations); distances with a threshold at their documented size (1,000 rows a side,
  Wasserstein 3,000);
- embeddings (16 correlated dims): ``--vector-windows`` windows of 2 vector features, 200 rows
  against 100, one fit per window.

Then the distances' thresholds by window size (flagged share of 5-feature windows at 200, 500,
1,000, 2,000 and 3,000 rows a side): their false-alarm rate falls with the window by design,
so only the documented size is held to the bound. ``--cost`` times the permutation tests per
window for the numbers of permutations "auto" draws (``--no-grid``: thresholds and cost only).
The seeds are fixed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import zlib
from datetime import date
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# ``detectors`` package it measures.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402 (after the sys.path fix above)
import torch  # noqa: E402 (after the sys.path fix above)

from detectors.calibration import (  # noqa: E402 (after the sys.path fix above)
    ALPHAS,
    DATA_KINDS,
    Case,
    Sizes,
    bound,
    cases,
    flagged_shares,
    window_results,
)
from detectors.permutations import resolve_permutations  # noqa: E402
from detectors.registry import REGISTRY, build  # noqa: E402

THRESHOLD_SIZES = (200, 500, 1000, 2000, 3000)


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _draws_permutations(case: Case) -> bool:
    """Whether the detector draws permutations on this kind of data (then one call per
    window), tried on a small batch."""
    results = window_results(case, 0.05, Sizes(windows=2, features=2), seed=0)
    return any(np.any(r.extra.get("n_permutations", 0)) for [r] in results)


def calibration_rows(args: argparse.Namespace) -> list[list[str]]:
    rows: list[list[str]] = []
    for case in cases():
        if args.only and case.name not in args.only:
            continue
        spec = case.spec
        if spec.multivariate:
            grid = [Sizes(windows=args.vector_windows, features=2, reference=200, current=100)]
        elif case.by_threshold:
            grid = [Sizes(windows=args.windows, features=5)]  # rows: the documented size
        elif _draws_permutations(case):  # one call per window: the small size only
            grid = [Sizes(windows=args.per_window, features=5, reference=200, current=100)]
        else:
            grid = [
                Sizes(windows=args.windows, features=5, reference=200, current=100),
                Sizes(windows=args.windows // 2, features=5, reference=1000, current=1000),
            ]
        for sizes in grid:
            start = time.perf_counter()
            shares = flagged_shares(case, ALPHAS, sizes, seed=_seed(f"{case.id}/{sizes}"))
            seconds = time.perf_counter() - start
            shape = (
                f"{spec.threshold_rows} vs {spec.threshold_rows}"
                if case.by_threshold
                else f"{sizes.reference} vs {sizes.current}"
            )
            for alpha in ALPHAS:
                limit = bound(alpha, sizes.windows)
                rows.append(
                    [
                        case.id.split("-")[0],
                        case.data,
                        shape,
                        str(sizes.features),
                        str(sizes.windows),
                        f"{alpha:g}",
                        f"{shares[alpha]:.4f}",
                        f"{limit:.4f}",
                        "pass" if shares[alpha] <= limit else "FAIL",
                    ]
                )
            print(f"  {case.id} {shape}: {shares} ({seconds:.1f} s)", file=sys.stderr, flush=True)
    return rows


def threshold_rows(args: argparse.Namespace) -> list[list[str]]:
    """Flagged share of the distances at their default thresholds, by window size."""
    rows: list[list[str]] = []
    for case in cases():
        if not case.by_threshold or (args.only and case.name not in args.only):
            continue
        shares = []
        for n in THRESHOLD_SIZES:
            sizes = Sizes(windows=args.threshold_windows, threshold_rows=n)
            share = flagged_shares(case, (0.05,), sizes, seed=_seed(f"{case.id}/{n}"))[0.05]
            shares.append(f"{share:.3f}")
        rows.append([case.name, case.data, str(REGISTRY[case.name].threshold_rows), *shares])
    return rows


def cost_rows() -> list[list[str]]:
    """Seconds per window of the permutation tests, for the numbers "auto" draws."""
    rows: list[list[str]] = []
    rng = np.random.default_rng(0)
    for name, (n_ref, n_cur), dim in [
        ("mmd", (200, 100), 32),
        ("energy", (200, 100), 32),
        ("mmd", (1000, 1000), 32),
        ("energy", (1000, 1000), 32),
    ]:
        ref, cur = rng.normal(size=(n_ref, dim)), rng.normal(size=(n_cur, dim))
        for family, alpha in [(1, 0.05), (21, 0.05), (100, 0.05), (100, 0.01)]:
            drawn = resolve_permutations("auto", family_size=family, alpha=alpha, minimum=200)
            detector = build(name, device="cpu", alpha=alpha, family_size=family).make()
            detector.fit(ref)
            detector.score(cur)  # warm
            start = time.perf_counter()
            detector.score(cur)
            rows.append(
                [
                    name,
                    f"{n_ref} vs {n_cur}, {dim} dims",
                    f"{family} tests, alpha {alpha:g}",
                    str(drawn),
                    f"{time.perf_counter() - start:.3f}",
                ]
            )
            print(f"  cost {rows[-1]}", file=sys.stderr, flush=True)
    # anderson draws permutations on ties only when asked (its default decides them by KS)
    tied: list[tuple[str, dict[str, Any]]] = [("anderson", {"ties": "permutation"}), ("cvm", {})]
    for name, params in tied:
        kind = DATA_KINDS["integers"]
        ref, cur = kind.draw(rng, 200, 20), kind.draw(rng, 100, 20)
        for family, alpha in [(20, 0.05), (100, 0.01)]:
            detector = build(name, params, device="cpu", alpha=alpha, family_size=family)
            detector.fit(ref)
            detector.score(cur)
            start = time.perf_counter()
            result = detector.score(cur)
            rows.append(
                [
                    name + (" (ties=permutation)" if params else ""),
                    "200 vs 100, 20 Poisson(2) features",
                    f"{family} tests, alpha {alpha:g}",
                    str(int(result.extra["n_permutations"].max())),
                    f"{time.perf_counter() - start:.3f}",
                ]
            )
            print(f"  cost {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--per-window", type=int, default=1000)
    parser.add_argument("--vector-windows", type=int, default=1000)
    parser.add_argument("--threshold-windows", type=int, default=400)
    parser.add_argument("--only", nargs="*", help="registry names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="few windows, to check the script")
    parser.add_argument("--cost", action="store_true", help="also time the permutation tests")
    parser.add_argument("--no-grid", action="store_true", help="only the thresholds (and cost)")
    args = parser.parse_args()
    if args.quick:
        args.windows = args.per_window = args.vector_windows = args.threshold_windows = 20
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    started = time.perf_counter()
    print(
        f"benchmarks/calibration.py, {date.today()}, {platform.processor() or platform.machine()},"
        f" torch {torch.__version__} ({torch.get_num_threads()} threads), CPU\n"
    )
    header = ["detector", "data", "rows", "features", "windows", "alpha", "flagged", "bound"]
    if not args.no_grid:
        print(_table([*header, "pass"], calibration_rows(args)))
    print("\nDistances at their default threshold, flagged share of 5-feature windows at alpha")
    print("0.05 (no p-value: the same at any alpha), by rows a side:\n")
    sizes = [f"{n} rows" for n in THRESHOLD_SIZES]
    print(_table(["detector", "data", "documented rows", *sizes], threshold_rows(args)))
    if args.cost:
        print("\nSeconds per window (one score, after a warm one) of the permutation tests:\n")
        header = ["detector", "window", "family", "permutations", "seconds"]
        print(_table(header, cost_rows()))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
