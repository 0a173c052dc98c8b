"""benchmarks/quality.py end to end on small sizes: its table holds what it claims.

The full grid is a benchmark run (README, Detection quality); here the quick mode runs in
process with KS and KS on principal components (a joint configuration) on 200-row references
and 60-row windows, and the table it writes is read back.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "benchmark_quality", ROOT / "benchmarks/quality.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rates(quality: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[float]]:
    out = tmp_path_factory.mktemp("quality") / "table.md"
    args = ["--quick", "--only", "ks", "ks_pca", "--reference-rows", "200", "--window-rows", "60"]
    quality.main([*args, "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0] == "| cell | ks | ks_pca |"
    return {
        cells[0]: [float(v) for v in cells[1:]]
        for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows[1:])
    }


def test_every_cell_has_a_rate_per_configuration(
    quality: ModuleType, rates: dict[str, list[float]]
) -> None:
    labels = [cell.label for source in quality.SOURCES for cell in source.cells]
    assert list(rates) == labels
    assert all(len(r) == 2 and all(0.0 <= v <= 1.0 for v in r) for r in rates.values())
    assert sum("control" in label for label in labels) == len(quality.SOURCES)


def test_a_strong_mean_shift_is_caught_more_often_than_the_control(
    rates: dict[str, list[float]],
) -> None:
    ks = 0
    control = rates["tabular: control (false alarms)"][ks]
    assert rates["tabular: mean shift, 1 sd"][ks] > control
    # the joint-only changes keep every feature's values: KS decides as on the control window
    joint = [r[ks] for label, r in rates.items() if "joint only" in label]
    assert joint and all(r == control for r in joint)


def test_a_joint_only_change_leaves_every_marginal_as_it_was(quality: ModuleType) -> None:
    """The joint-only change permutes values within each feature of the window: a per-feature
    test sees exactly the unchanged window."""
    import numpy as np

    rng = np.random.default_rng(3)
    _reference, raw = quality.TABULAR.draw(rng, 300, 100)
    for cell in quality.TABULAR.cells:
        if cell.shift != "joint only":
            continue
        changed = cell.change(raw, np.random.default_rng(4))
        assert np.array_equal(np.sort(changed, axis=0), np.sort(raw, axis=0))
        assert not np.array_equal(changed, raw)  # but the rows are no longer the same
