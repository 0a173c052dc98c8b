"""Detection quality: how often each configuration flags a shifted window, and a control one.

    nice -n 10 .venv/bin/python benchmarks/quality.py [--trials 50] [--fast] [--quick]
        [--only ks mmd ...] [--out FILE]

Calibration (``benchmarks/calibration.py``) checks false alarms; this, what is caught.
Windows of 200 rows are tested against a reference from the same data as the service decides
(alpha 0.05, one BH family per window, :func:`detectors.verdict.window_verdict`). A cell is one
change at one severity; its number is the share of ``--trials`` seeded windows flagged (control
cells: false alarms).

Data (shipped with scikit-learn, nothing downloaded; ``digits`` is kept aside, unused):

- images: grey 8x8 patches (64 features in [0, 1]) of ``load_sample_images()`` downscaled 4x
  by block means; reference (900) and window (200) patches at distinct random positions. A
  corruption acts on the 16x16 context of a patch (blur and rotation see real neighbours),
  then the centre 8x8 is kept, clipped to [0, 1]: gaussian noise, gaussian blur, rotation,
  brightness and contrast, an occlusion (two fixed pixels black in a share of the patches);
- tabular: ``load_breast_cancer()`` (569 rows, 30 features), 369 random rows the reference,
  the other 200 the window: a mean shift and a scale change of one feature, and a joint-only
  change (the three "worst size" features shuffled together among a share of the window's
  rows: every feature keeps its values, so a per-feature test sees the control exactly).

Within a trial every configuration is fitted once on one reference and scores the same window
under every change: configurations are compared window by window (``paired``: McNemar). Joint
configurations test all features as one standardized vector; ``default`` is a monitor's
defaults (per-feature tests and the joint stage), ``default_*`` variants of it."""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

# run as a script, this folder comes first on sys.path: its names would shadow the packages
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402 (after the sys.path fix above)
import torch  # noqa: E402

from detectors.registry import REGISTRY, build  # noqa: E402
from detectors.verdict import family_size, window_verdict  # noqa: E402

ALPHA = 0.05
CORRECTION = "bh"
PATCH = 8
CONTEXT = 16  # corruptions see this much around a patch
DOWNSCALE = 4
OCCLUDED = ((3, 3), (3, 4))  # the two pixels of the occlusion, in the 8x8 patch


class Fitted(Protocol):
    """A configuration fitted on one reference: decides windows as the service would."""

    def flagged(self, current: np.ndarray) -> bool: ...


Configuration = Callable[[np.ndarray, int], Fitted]
Change = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class PerFeature:
    """A univariate registry detector on every column, one BH family over the columns."""

    def __init__(self, name: str, reference: np.ndarray, seed: int) -> None:
        family = family_size(reference.shape[1], CORRECTION)
        params = {"seed": seed} if "seed" in REGISTRY[name].parameters() else {}
        self.detector = build(name, params, device="cpu", alpha=ALPHA, family_size=family)
        self.detector.fit(reference)

    def flagged(self, current: np.ndarray) -> bool:
        result = self.detector.score(current)
        return window_verdict([result], alpha=ALPHA, correction=CORRECTION).flagged


class Joint:
    """A multivariate registry detector on all columns as one vector standardized by the
    reference (else the largest feature would set a kernel's bandwidth); one test."""

    def __init__(
        self, name: str, reference: np.ndarray, seed: int, params: dict[str, Any] | None = None
    ) -> None:
        self.mean = reference.mean(axis=0)
        sd = reference.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)
        seeded = {"seed": seed} if "seed" in REGISTRY[name].parameters() else {}
        params = {**(params or {}), **seeded}
        self.detector = build(name, params, device="cpu", alpha=ALPHA, family_size=1)
        self.detector.fit([self._z(reference)])

    def _z(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((x - self.mean) / self.sd, dtype=np.float64)

    def flagged(self, current: np.ndarray) -> bool:
        result = self.detector.score([self._z(current)])
        return window_verdict([result], alpha=ALPHA, correction=CORRECTION).flagged


class Default:
    """A monitor's defaults (``MonitorConfig()``, ``config`` changing some) on numeric
    features, fitted and decided as ``monitor/runs/pipeline.py`` does, with the service's seed."""

    def __init__(self, reference: np.ndarray, seed: int, config: dict[str, Any]) -> None:
        from detectors.joint import marginal_family_size
        from monitor.runs.joint_stage import fit_joint, joint_columns, score_joint
        from monitor.spec.model import MonitorConfig

        self.monitor = monitor = MonitorConfig.model_validate(config)
        self._score_joint = score_joint
        names = self.names = [f"x{i}" for i in range(reference.shape[1])]
        columns = dict(zip(names, reference.T, strict=True))
        block = joint_columns(monitor, columns)
        family = family_size(len(names), monitor.correction)
        if block and monitor.joint is not None and monitor.correction != "none":
            family = marginal_family_size(len(names), monitor.joint.share)
        choice = monitor.detector("numeric")
        self.detector = build(
            choice.name, choice.params, device="cpu", alpha=monitor.alpha, family_size=family
        ).fit(reference, names)
        self.joint = fit_joint(monitor, columns, block, "cpu") if block else None

    def flagged(self, current: np.ndarray) -> bool:
        monitor, columns = self.monitor, dict(zip(self.names, current.T, strict=True))
        joint = [self._score_joint(self.joint, columns)] if self.joint is not None else []
        return window_verdict(
            [self.detector.score(current)],
            alpha=monitor.alpha,
            correction=monitor.correction,
            joint=joint,
            share=monitor.joint.share if monitor.joint else 0.1,
        ).flagged


@dataclass(frozen=True)
class Column:
    """One configuration: ``slow`` ones are left out by ``--fast``."""

    name: str
    fit: Configuration
    description: str
    slow: bool = False


def _per_feature(name: str) -> Configuration:
    return functools.partial(PerFeature, name)


def _joint(name: str, **params: Any) -> Configuration:
    return functools.partial(Joint, name, params=params)


def _default(**config: Any) -> Configuration:
    return functools.partial(Default, config=config)


_AD = {"numeric": "anderson"}  # the per-feature default when the _fourier and _fm ran
FOURIER_MAHALANOBIS = ["fourier_mmd", "mahalanobis"]
CONFIGURATIONS: list[Column] = [
    Column("ks", _per_feature("ks"), "KS per feature + BH (the first numeric default)"),
    Column("cvm", _per_feature("cvm"), "Cramér-von Mises per feature + BH"),
    Column("anderson", _per_feature("anderson"), "Anderson-Darling per feature + BH"),
    Column("anderson_ks", _per_feature("anderson_ks"), "AD and KS, Cauchy-combined, + BH"),
    Column("ks_weighted_ks", _per_feature("ks_weighted_ks"), "KS and weighted KS, Cauchy, + BH"),
    Column("mmd", _joint("mmd", n_permutations="auto"), "one RBF MMD over all features"),
    Column("fourier_mmd", _joint("fourier_mmd"), "RBF MMD on random Fourier features, 3 widths"),
    Column("mahalanobis", _joint("mahalanobis"), "AD on Mahalanobis distances (leave-one-out)"),
    Column("energy", _joint("energy", n_permutations="auto"), "one energy-distance test"),
    Column("ks_pca", _joint("ks_pca"), "KS on the top 8 principal components, Bonferroni"),
    Column("classifier", _joint("classifier"), "classifier two-sample test", slow=True),
    Column("default", _default(), "MonitorConfig() defaults: per-feature + joint stage"),
    Column("default_ks", _default(detectors={"numeric": "ks"}), "defaults, KS per feature"),
    Column("default_fourier", _default(detectors=_AD, joint={"detector": "fourier_mmd"}), "AD"),
    Column("default_fm", _default(detectors=_AD, joint={"detector": FOURIER_MAHALANOBIS}), "AD"),
    Column("default_anderson_ks", _default(detectors={"numeric": "anderson_ks"}), "AD+KS/feature"),
    Column("default_anderson", _default(detectors=_AD), "the default before ks_weighted_ks"),
]


@dataclass(frozen=True)
class Cell:
    """One change at one severity; ``change`` maps a trial's raw window to the window that is
    tested (None: the control, no change)."""

    data: str
    shift: str
    severity: str
    change: Change | None = None

    @property
    def label(self) -> str:
        if self.change is None:
            return f"{self.data}: control (false alarms)"
        return f"{self.data}: {self.shift}, {self.severity}"


@dataclass(frozen=True)
class Source:
    """A data set: ``draw(rng, reference_rows, window_rows)`` gives the reference (rows,
    features) and the raw window, which each cell's ``change`` (or ``plain``) turns into the
    tested (rows, features) window."""

    name: str
    draw: Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]
    plain: Callable[[np.ndarray], np.ndarray]
    cells: list[Cell] = field(default_factory=list)


@functools.cache
def _grey_images() -> list[np.ndarray]:
    """china.jpg and flower.jpg in grey, [0, 1], downscaled by block means."""
    from sklearn.datasets import load_sample_images

    images = []
    for rgb in load_sample_images().images:
        grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
        h, w = (s // DOWNSCALE * DOWNSCALE for s in grey.shape)
        blocks = grey[:h, :w].reshape(h // DOWNSCALE, DOWNSCALE, w // DOWNSCALE, DOWNSCALE)
        images.append(blocks.mean(axis=(1, 3)))
    return images


def _contexts(rng: np.random.Generator, rows: int) -> np.ndarray:
    """``rows`` CONTEXT x CONTEXT crops at distinct random positions of the two images."""
    images = _grey_images()
    spans = [(im.shape[0] - CONTEXT + 1, im.shape[1] - CONTEXT + 1) for im in images]
    sizes = [a * b for a, b in spans]
    picks = rng.choice(sum(sizes), size=rows, replace=False)
    out = np.empty((rows, CONTEXT, CONTEXT))
    for i, pick in enumerate(picks):
        which = 0 if pick < sizes[0] else 1
        local = pick - (0 if which == 0 else sizes[0])
        r, c = divmod(int(local), spans[which][1])
        out[i] = images[which][r : r + CONTEXT, c : c + CONTEXT]
    return out


def _centre(contexts: np.ndarray) -> np.ndarray:
    """The 8x8 patch at the centre of each context, flattened and clipped to [0, 1]."""
    lo = (CONTEXT - PATCH) // 2
    patch = contexts[:, lo : lo + PATCH, lo : lo + PATCH]
    return np.clip(patch.reshape(len(contexts), PATCH * PATCH), 0.0, 1.0)


def _draw_images(rng: np.random.Generator, n_ref: int, n_cur: int) -> tuple[np.ndarray, np.ndarray]:
    contexts = _contexts(rng, n_ref + n_cur)
    return _centre(contexts[:n_ref]), contexts[n_ref:]


def _noise(sd: float) -> Change:
    return lambda ctx, rng: _centre(ctx + rng.normal(0.0, sd, size=ctx.shape))


def _blur(sigma: float) -> Change:
    from scipy import ndimage

    return lambda ctx, rng: _centre(ndimage.gaussian_filter(ctx, sigma=(0.0, sigma, sigma)))


def _rotation(degrees: float) -> Change:
    from scipy import ndimage

    how: dict[str, Any] = {"axes": (1, 2), "reshape": False, "order": 1, "mode": "nearest"}
    return lambda ctx, rng: _centre(ndimage.rotate(ctx, degrees, **how))


def _light(contrast: float, brightness: float) -> Change:
    return lambda ctx, rng: _centre((ctx - 0.5) * contrast + 0.5 + brightness)


def _occlusion(share: float) -> Change:
    def change(ctx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        patches = _centre(ctx)
        hit = rng.random(len(patches)) < share
        for r, c in OCCLUDED:
            patches[hit, r * PATCH + c] = 0.0
        return patches

    return change


IMAGES = Source(
    "images",
    _draw_images,
    _centre,
    [
        Cell("images", "control", "", None),
        *(Cell("images", "gaussian noise", f"sd {s:g}", _noise(s)) for s in (0.05, 0.1, 0.2)),
        *(Cell("images", "blur", f"sigma {s:g}", _blur(s)) for s in (1.0, 1.5, 2.5)),
        *(Cell("images", "rotation", f"{d:g} degrees", _rotation(d)) for d in (15, 45, 90)),
        *(
            Cell("images", "brightness/contrast", f"x{c:g} +{b:g}", _light(c, b))
            for c, b in ((0.95, 0.015), (0.93, 0.02), (0.9, 0.03))
        ),
        *(
            Cell("images", "occlusion", f"{share:.0%} of patches", _occlusion(share))
            for share in (0.05, 0.1, 0.15)
        ),
    ],
)


MEAN_FEATURE, SCALE_FEATURE = 0, 1  # mean radius, mean texture
# worst radius, worst perimeter, worst area: correlated 0.94-0.97 with the mean radius
DECOUPLED = np.array([20, 22, 23])


@functools.cache
def _cancer() -> np.ndarray:
    from sklearn.datasets import load_breast_cancer

    return np.asarray(load_breast_cancer().data, dtype=np.float64)


def _draw_tabular(
    rng: np.random.Generator, n_ref: int, n_cur: int
) -> tuple[np.ndarray, np.ndarray]:
    data = _cancer()
    order = rng.permutation(len(data))
    n_cur = min(n_cur, len(data) // 2)
    n_ref = min(n_ref, len(data) - n_cur)
    return data[order[n_cur : n_cur + n_ref]], data[order[:n_cur]]


def _column(j: int, move: Callable[[np.ndarray], np.ndarray]) -> Change:
    """The window with feature ``j`` moved."""

    def change(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        out[:, j] = move(x[:, j])
        return out

    return change


def _mean_shift(sds: float) -> Change:
    return _column(MEAN_FEATURE, lambda v: v + sds * _cancer()[:, MEAN_FEATURE].std())


def _scale(factor: float) -> Change:
    centre = lambda: np.median(_cancer()[:, SCALE_FEATURE])  # noqa: E731
    return _column(SCALE_FEATURE, lambda v: centre() + factor * (v - centre()))


def _decouple(share: float) -> Change:
    """Shuffle the DECOUPLED features together among a share of the window's rows: every
    feature keeps its values, only a tumour's worst size's pairing with its mean size changes."""

    def change(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x.copy()
        rows = np.flatnonzero(rng.random(len(x)) < share)
        out[np.ix_(rows, DECOUPLED)] = x[np.ix_(rng.permutation(rows), DECOUPLED)]
        return out

    return change


TABULAR = Source(
    "tabular",
    _draw_tabular,
    lambda x: x,
    [
        Cell("tabular", "control", "", None),
        *(Cell("tabular", "mean shift", f"{s:g} sd", _mean_shift(s)) for s in (0.2, 0.4, 1.0)),
        *(Cell("tabular", "scale", f"x{f:g}", _scale(f)) for f in (1.5, 2.0)),
        *(
            Cell("tabular", "joint only", f"{share:.0%} of rows decoupled", _decouple(share))
            for share in (0.5, 0.75, 1.0)
        ),
    ],
)

SOURCES = [IMAGES, TABULAR]


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


@dataclass
class Grid:
    """Each window's verdict per (cell label, configuration), in trial order; seconds per one."""

    trials: int
    flags: dict[tuple[str, str], list[bool]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    shapes: dict[str, str] = field(default_factory=dict)  # source: "reference vs window rows"

    def rate(self, cell: str, column: str) -> float:
        return sum(self.flags[(cell, column)]) / self.trials


def paired(grid: Grid, sources: Sequence[Source], ours: str = "default") -> str:
    """``ours`` against the better of KS and MMD per cell, window by window: windows only one
    of them flags, each way, and the exact two-sided McNemar p-value on those."""
    from scipy import stats

    lines = [f"| cell | peer | {ours} only | peer only | McNemar p |", "|---|---|---:|---:|---:|"]
    for cell in (c for s in sources for c in s.cells):
        peer = max(("ks", "mmd"), key=lambda n: grid.rate(cell.label, n))
        mine, theirs = (np.array(grid.flags[(cell.label, n)]) for n in (ours, peer))
        wins, losses = int((mine & ~theirs).sum()), int((theirs & ~mine).sum())
        p = stats.binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
        lines.append(f"| {cell.label} | {peer} | {wins} | {losses} | {p:.3f} |")
    return "\n".join(lines)


def _window(cell: Cell, source: Source, raw: np.ndarray, trial: int) -> np.ndarray:
    if cell.change is None:
        return source.plain(raw)
    return cell.change(raw, np.random.default_rng(_seed(cell.label, trial)))


def run(
    columns: Sequence[Column],
    sources: Sequence[Source] = tuple(SOURCES),
    *,
    trials: int,
    reference_rows: int = 900,
    window_rows: int = 200,
    progress: bool = False,
) -> Grid:
    """Every configuration on every cell of every source, ``trials`` seeded windows each."""
    grid = Grid(trials)
    for source in sources:
        for trial in range(trials):
            rng = np.random.default_rng(_seed(source.name, trial))
            reference, raw = source.draw(rng, reference_rows, window_rows)
            grid.shapes[source.name] = f"{len(reference)} vs {len(raw)} rows"
            windows = [(c.label, _window(c, source, raw, trial)) for c in source.cells]
            for column in columns:
                start = time.perf_counter()
                fitted = column.fit(reference, _seed(column.name, source.name, trial))
                for label, window in windows:
                    flags = grid.flags.setdefault((label, column.name), [])
                    flags.append(bool(fitted.flagged(window)))
                spent = time.perf_counter() - start
                grid.seconds[column.name] = grid.seconds.get(column.name, 0.0) + spent
            if progress and (trial + 1) % 10 == 0:
                print(f"  {source.name}: {trial + 1}/{trials} trials", file=sys.stderr)
    return grid


def table(grid: Grid, columns: Sequence[Column], sources: Sequence[Source]) -> str:
    """Cells as rows, configurations as columns; control rows hold the false-alarm share."""
    names = [c.name for c in columns]
    lines = ["| cell | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for source in sources:
        for cell in source.cells:
            rates = [f"{grid.rate(cell.label, n):.2f}" for n in names]
            lines.append(f"| {cell.label} | " + " | ".join(rates) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="seeded windows per cell")
    for side, rows in (("reference", 900), ("window", 200)):
        parser.add_argument(f"--{side}-rows", type=int, default=rows)
    parser.add_argument("--only", nargs="*", help="configurations to run (default: all)")
    parser.add_argument("--fast", action="store_true", help="leave out the slow configurations")
    parser.add_argument("--quick", action="store_true", help="3 trials, to check the script")
    parser.add_argument("--out", help="also write the table (Markdown) to this file")
    args = parser.parse_args(argv)
    args.trials = 3 if args.quick else args.trials
    wanted = lambda c: (not args.only or c.name in args.only) and not (args.fast and c.slow)  # noqa: E731
    columns = [c for c in CONFIGURATIONS if wanted(c)]
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    started = time.perf_counter()
    sizes = {"reference_rows": args.reference_rows, "window_rows": args.window_rows}
    grid = run(columns, SOURCES, trials=args.trials, progress=True, **sizes)
    command = "benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    spent = ", ".join(f"{n} {s:.0f} s" for n, s in grid.seconds.items())
    shapes = ", ".join(f"{name} {shape}" for name, shape in grid.shapes.items())
    header = (
        f"{command.strip()}: {date.today()}, {platform.machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), CPU; alpha {ALPHA}, {args.trials} trials per "
        f"cell; {shapes}"
    )
    spent += f"; {time.perf_counter() - started:.0f} s in all"
    text = f"{header}\n\n{table(grid, columns, SOURCES)}\n\nSeconds (fit + score): {spent}."
    names = [c.name for c in columns]
    for ours in (n for n in names if n.startswith("default") and {"ks", "mmd"} <= set(names)):
        text += f"\n\n{paired(grid, SOURCES, ours)}"
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
