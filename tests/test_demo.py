"""The demo end to end, and the statistics it relies on."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
from rich.console import Console

from detectors import ChiSquareTest, KSWeightedKSTest, adjust
from monitor.demo.data import DRIFTED, UNDRIFTED, generate
from monitor.demo.run import run_demo


def test_demo_flags_the_drifted_features_and_not_the_others(tmp_path: Path) -> None:
    out = StringIO()
    outcome = run_demo(tmp_path / "demo", console=Console(file=out, width=120))
    assert outcome.client_stats["sent"] == 3000 and outcome.client_stats["rejected"] == 0
    assert outcome.run["status"] == "drift"
    assert outcome.run["n_current"] == 1000
    assert outcome.drifted >= DRIFTED, outcome.drifted
    assert not (UNDRIFTED & outcome.drifted), outcome.drifted
    text = out.getvalue()
    assert "verdict" in text and "brightness" in text and "Where to look next" in text
    assert (tmp_path / "demo" / "tidewatch.db").exists()


def test_unchanged_features_are_flagged_at_about_the_nominal_rate() -> None:
    """Over 40 undrifted windows, the default test (KS and the weighted KS) with BH at alpha 0.05
    flags an unchanged feature rarely.

    The demo uses one fixed seed; this shows that seed does not hide a biased test. With 5
    unchanged features per window, the expected share of windows with any false alarm under BH
    is at most about 1 - 0.95**5 = 23%; 40 windows give a generous upper bound of 40%.
    """
    numeric = sorted(UNDRIFTED - {"camera"})
    ref = generate(2000, drifted=False, seed=7)
    ref_x = np.array([[r["features"][f] for f in numeric] for r in ref])
    ref_c = np.array([[r["features"]["camera"]] for r in ref], dtype=object)
    marginal, chi2 = (
        KSWeightedKSTest(device="cpu", correction="none").fit(ref_x),
        ChiSquareTest(device="cpu", correction="none").fit(ref_c),
    )
    alarms = 0
    for seed in range(100, 140):
        cur = generate(1000, drifted=True, seed=seed)
        x = np.array([[r["features"][f] for f in numeric] for r in cur])
        c = np.array([[r["features"]["camera"]] for r in cur], dtype=object)
        p = np.concatenate([marginal.score(x).p_value, chi2.score(c).p_value])
        alarms += bool((adjust(p, "bh") < 0.05).any())
    assert alarms / 40 <= 0.4
    # and the drifted ones are always found
    cur = generate(1000, drifted=True, seed=100)
    bright = np.array([[r["features"]["brightness"]] for r in cur])
    assert (
        KSWeightedKSTest(device="cpu")
        .fit(np.array([[r["features"]["brightness"]] for r in ref]))
        .score(bright)
        .drift[0]
    )
