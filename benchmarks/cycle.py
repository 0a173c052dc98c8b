"""One detection cycle over many models, as the scheduler runs it, and what dominates it.

    DO_NOT_TRACK=1 .venv/bin/python benchmarks/cycle.py [--models 1000] [--features 50]
        [--rows 2000] [--database-url URL] [--peer-models 100] [--default-monitor]

Issue #5's workload: 1,000 models with 50 numeric features each, a KS test per feature with
Benjamini-Hochberg correction across the model, 2,000-row windows against 2,000-row
references. Everything is set up first (models, references, one window of telemetry per model)
in a fresh SQLite file by default, then:

- cycle 1 (cold): every monitor runs once through ``monitor.runs.monitoring.run_due``, as the
  scheduler's jobs do: read the window from storage, fit the reference (not yet cached), test,
  correct, store the run and its 50 results, update the monitor's state;
- cycle 2 (warm): the same again with every fitted reference in the cache (the steady state of
  a scheduler that runs every few minutes);
- the time of each phase, measured by wrapping the functions that do it;
- the same statistics computed by frouros (``KSTest`` per feature, then BH), on the windows in
  memory, for ``--peer-models`` models, scaled to the full count, beside Tidewatch's compute
  on the same in-memory windows.

One run; the machine is shared and noisy, so read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

import monitor.runs.monitoring as monitoring  # noqa: E402
import monitor.runs.pipeline as pipeline  # noqa: E402
from detectors import adjust  # noqa: E402
from detectors import registry as detector_registry  # noqa: E402
from monitor.data.layout import arrow_schema  # noqa: E402
from monitor.db.engine import make_engine, make_sessionmaker  # noqa: E402
from monitor.db.migrate import upgrade  # noqa: E402
from monitor.db.models import RegisteredModel, upsert_model  # noqa: E402
from monitor.db.references import save_reference  # noqa: E402
from monitor.db.telemetry import ingest  # noqa: E402
from monitor.spec.model import JointSpec, ModelSpec, MonitorConfig  # noqa: E402

console = Console()
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def model_spec(i: int, features: int, rows: int, default_monitor: bool = False) -> ModelSpec:
    """Model i's spec: issue #5's monitor (KS alone), or with ``default_monitor`` the
    defaults' detectors and joint stage."""
    names = [f"x{j}" for j in range(features)]
    # issue #5's workload: KS alone (the joint stage is timed in memory below)
    tests: dict[str, Any] = (
        {} if default_monitor else {"detectors": {"numeric": "ks"}, "joint": None}
    )
    return ModelSpec.model_validate(
        {
            "name": f"model-{i:04d}",
            "features": [{"name": n, "kind": "numeric"} for n in names],
            "output": {"task": "regression"},
            "monitors": [
                {
                    "name": "drift",
                    "window": {"by": "count", "size": rows},
                    "min_samples": 100,
                    **tests,
                    "features": names,  # the 50 inputs; prediction drift is not part of it
                    "quality": False,
                }
            ],
        }
    )


def table(spec: ModelSpec, data: np.ndarray, start: datetime, prefix: str) -> pa.Table:
    n = data.shape[0]
    columns: dict[str, Any] = {
        "id": pa.array([f"{prefix}{k}" for k in range(n)]),
        "ts": pa.array([start + timedelta(milliseconds=k) for k in range(n)]),
    }
    for j, feature in enumerate(spec.features):
        columns[f"f.{feature.name}"] = pa.array(data[:, j])
    columns["p.value"] = pa.array(data[:, 0] * 2.0)
    return pa.table(columns, schema=arrow_schema(spec))


def windows(i: int, rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """Model i's reference and current window; every tenth model drifts in a few features."""
    rng = np.random.default_rng(i)
    reference = rng.normal(size=(rows, features))
    current = rng.normal(size=(rows, features))
    if i % 10 == 0:
        current[:, :5] += 0.5
    return reference, current


def set_up(
    url: str, models: int, features: int, rows: int, default_monitor: bool = False
) -> list[RegisteredModel]:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    registered = []
    with Progress(console=console) as progress:
        task = progress.add_task("setting up models, references, telemetry", total=models)
        for i in range(models):
            spec = model_spec(i, features, rows, default_monitor)
            reference, current = windows(i, rows, features)
            with sessions() as session:
                model, _ = upsert_model(session, spec)
                save_reference(session, model, table(spec, reference, NOW - timedelta(days=1), "r"))
            ingest(sessions, engine, model, table(spec, current, NOW, "c"))
            registered.append(model)
            progress.advance(task)
    engine.dispose()
    return registered


class Phases:
    """Wall time spent inside chosen functions (wrapped in place while measuring)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, label: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    @contextmanager
    def measuring(self) -> Iterator[None]:
        undo = [
            self.wrap(monitoring, "load_window", "read window (SQL + decompress)"),
            self.wrap(pipeline, "fit_reference", "fit reference (decode + sort)"),
        ]
        score = pipeline._drift_step

        def drift_step(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return score(*args, **kwargs)
            finally:
                self.seconds["_drift_step"] += time.perf_counter() - t

        pipeline._drift_step = drift_step
        try:
            yield
        finally:
            pipeline._drift_step = score
            for u in undo:
                u()


def cycle(
    url: str, registered: list[RegisteredModel], cache: pipeline.ReferenceCache, device: str
) -> tuple[float, Phases]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    phases = Phases()
    with phases.measuring():
        t = time.perf_counter()
        for model in registered:
            monitoring.run_due(
                sessions, model, model.spec.monitors[0], cache, device=device, trigger="schedule"
            )
        total = time.perf_counter() - t
    engine.dispose()
    return total, phases


def compute_only(models: int, rows: int, features: int, device: str) -> dict[str, float]:
    """Seconds of Tidewatch's KS + BH, frouros' KSTest per feature + BH, and Tidewatch's default
    (its numeric test and the joint tests over the block, weighted BH: detectors.joint) on
    in-memory windows: fit and score from scratch (``ks``, ``frouros``, ``default``), and the
    score of a window against references already fitted (``ks_score``, ``default_score``: what
    a window costs once the service has its references cached), and the default's first window
    in the process (``default_first``: it also pays what is cached for later windows)."""
    from frouros.detectors.data_drift import KSTest

    from detectors.verdict import window_verdict
    from monitor.runs.joint_stage import fit_joint, score_joint

    monitor = MonitorConfig()
    joint = monitor.joint
    assert joint is not None
    names = [f"x{j}" for j in range(features)]
    choice = monitor.detector("numeric")

    def default(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
        """Seconds to fit and score the default, and to score it alone."""
        t = time.perf_counter()
        marginal = detector_registry.build(choice.name, choice.params, device=device, alpha=0.05)
        columns = dict(zip(names, reference.T, strict=True))
        block = fit_joint(monitor, columns, names, device)  # as the pipeline fits it
        marginal.fit(reference, names)
        scored = time.perf_counter()
        window_verdict(
            [marginal.score(current)],
            alpha=0.05,
            correction="bh",
            joint=[score_joint(block, dict(zip(names, current.T, strict=True)))],
            share=joint.share,
        )
        return time.perf_counter() - t, time.perf_counter() - scored

    # once per process and pair of sizes, the first window pays what is cached after it
    # (ks_weighted_ks's p-value table): timed apart, so that scaling the timed models to all of
    # them counts it once, not once per ten models
    seconds = dict.fromkeys(["ks", "frouros", "default", "ks_score", "default_score"], 0.0)
    seconds["default_first"] = default(*windows(models, rows, features))[0]
    for i in range(models):
        reference, current = windows(i, rows, features)
        t = time.perf_counter()
        detector = detector_registry.build("ks", {}, device=device, alpha=0.05)
        detector.fit(reference, names)
        scored = time.perf_counter()
        ours = adjust(detector.score(current).p_value, "bh")
        seconds["ks"] += time.perf_counter() - t
        seconds["ks_score"] += time.perf_counter() - scored
        t = time.perf_counter()
        p_values = []
        for j in range(features):
            test = KSTest()
            test.fit(X=reference[:, j])
            p_values.append(test.compare(X=current[:, j])[0].p_value)
        theirs = adjust(np.asarray(p_values), "bh")
        seconds["frouros"] += time.perf_counter() - t
        fitted_and_scored, scored_only = default(reference, current)
        seconds["default"] += fitted_and_scored
        seconds["default_score"] += scored_only
        if not np.allclose(ours, theirs, rtol=1e-9, atol=1e-12):
            raise AssertionError(f"model {i}: p-values differ from frouros")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--peer-models", type=int, default=100)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--default-monitor",
        action="store_true",
        help="cycle the default monitor (its numeric test, the joint stage) instead of KS alone",
    )
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'cycle.db'}"
        t = time.perf_counter()
        registered = set_up(url, args.models, args.features, args.rows, args.default_monitor)
        setup_s = time.perf_counter() - t
        cache = pipeline.ReferenceCache(size=args.models + 1)
        cold, cold_phases = cycle(url, registered, cache, args.device)
        warm, warm_phases = cycle(url, registered, cache, args.device)
        size = Path(tmp, "cycle.db").stat().st_size if args.database_url is None else None
    peer = min(args.peer_models, args.models)
    spent = compute_only(peer, args.rows, args.features, args.device)
    ours, theirs, default = spent["ks"], spent["frouros"], spent["default"]
    scale = args.models / peer

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    numeric = MonitorConfig().detector("numeric").name
    workload = f"default monitor ({numeric} + joint stage)" if args.default_monitor else "KS + BH"
    console.print(
        f"{args.models} models x {args.features} features, {args.rows}-row windows and "
        f"references, {workload}; device {device}, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs; set-up {setup_s:.0f} s"
        + (f", database {size / 1e9:.2f} GB" if size else "")
    )
    totals = Table(
        "cycle", "total s", "per model ms", title="one detection cycle, storage included"
    )
    totals.add_row("1, cold (references fitted)", f"{cold:.1f}", f"{1000 * cold / args.models:.1f}")
    totals.add_row("2, warm (references cached)", f"{warm:.1f}", f"{1000 * warm / args.models:.1f}")
    console.print(totals)
    for name, total, phases in (("cold", cold, cold_phases), ("warm", warm, warm_phases)):
        breakdown = Table("phase", "s", "share", title=f"where the {name} cycle goes")
        seconds = dict(phases.seconds)
        drift = seconds.pop("_drift_step", 0.0)
        fit = seconds.get("fit reference (decode + sort)", 0.0)
        tests = f"{numeric} + joint + weighted BH" if args.default_monitor else "KS tests + BH"
        seconds[f"{tests} (columns, score, correct)"] = max(drift - fit, 0.0)
        seconds["storing runs, results, state + rest"] = max(total - sum(seconds.values()), 0.0)
        for phase, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
            breakdown.add_row(phase, f"{value:.1f}", f"{value / total:.0%}")
        console.print(breakdown)
    peer_table = Table(
        "compute only, in memory",
        "s (scaled to all models)",
        "ratio",
        title=f"KS + BH on the same windows ({peer} models timed, x{scale:g})",
    )
    peer_table.add_row("Tidewatch (fit + score + BH)", f"{ours * scale:.1f}", "1.0x")
    peer_table.add_row(
        "frouros KSTest per feature + BH", f"{theirs * scale:.1f}", f"{theirs / ours:.1f}x"
    )
    peer_table.add_row(
        f"Tidewatch default: {numeric} + joint {'+'.join(JointSpec().detectors())} (weighted BH)",
        f"{default * scale:.1f}",
        f"{default / ours:.1f}x",
    )
    peer_table.add_row(
        "Tidewatch KS + BH, score only (references fitted)",
        f"{spent['ks_score'] * scale:.1f}",
        f"{spent['ks_score'] / ours:.1f}x",
    )
    peer_table.add_row(
        "Tidewatch default, score only (references fitted)",
        f"{spent['default_score'] * scale:.1f}",
        f"{spent['default_score'] / ours:.1f}x ({spent['default_score'] / spent['ks_score']:.1f}x "
        "KS's score)",
    )
    console.print(peer_table)
    console.print(
        f"The default's first window in memory (not scaled, not in the rows above: what is "
        f"cached after it, such as {numeric}'s p-value table per pair of sizes): "
        f"{spent['default_first']:.2f} s (after cycles of the default monitor, already cached)."
    )


if __name__ == "__main__":
    main()
