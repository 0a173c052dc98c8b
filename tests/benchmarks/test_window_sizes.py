"""benchmarks/window_sizes.py runs (quick mode, 3 features) and prints a row per pair of sizes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_table_has_a_row_per_pair_of_sizes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "benchmark_window_sizes", ROOT / "benchmarks/window_sizes.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["window_sizes.py", "--quick", "--features", "3"])
    module.main()
    out = capsys.readouterr().out
    assert "900 vs 200" in out and "10,000 vs 50" in out and "2,000 vs 2,000" not in out
    assert out.count("x │") == 2  # the ratio column, one per row
