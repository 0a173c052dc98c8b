"""The ``glr`` streaming detector: calibration on unchanged streams, delay on a change.

The state round trip, the comparison with its core class and the common checks run in
test_streaming.py with every other streaming method. The full grid (50 streams each, with the
frouros detectors beside it) is ``benchmarks/streaming.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.streaming import make_streaming

SEEDS = range(5)
CHANGE = 1500  # after the default burn-in of 1000


def zero_one(seed: int, n: int, change: int | None = None) -> np.ndarray:
    """0/1 errors at rate 0.1, 0.3 from ``change`` on."""
    rng = np.random.default_rng(seed)
    rate = np.full(n, 0.1)
    if change is not None:
        rate[change:] = 0.3
    return (rng.random(n) < rate).astype(np.float64)


def absolute(seed: int, n: int, change: int | None = None) -> np.ndarray:
    """A regressor's absolute errors (Gaussian residuals), mean 0.1, 0.3 from ``change`` on."""
    rng = np.random.default_rng(seed)
    scale = np.full(n, 0.1 * np.sqrt(np.pi / 2))
    if change is not None:
        scale[change:] *= 3
    return np.abs(rng.normal(0.0, scale))


@pytest.mark.parametrize("stream", [zero_one, absolute])
def test_no_false_alarm_on_unchanged_streams(stream) -> None:  # type: ignore[no-untyped-def]
    for seed in SEEDS:
        assert make_streaming("glr").update_many(stream(seed, 5000)).tolist() == []


@pytest.mark.parametrize("stream", [zero_one, absolute])
def test_detects_a_rate_increase_soon(stream) -> None:  # type: ignore[no-untyped-def]
    delays = []
    for seed in SEEDS:
        drifts = make_streaming("glr").update_many(stream(seed, CHANGE + 1000, CHANGE))
        assert len(drifts) and drifts[0] >= CHANGE, drifts  # nothing before the change
        delays.append(drifts[0] - CHANGE)
    # The information limit for 0.1 -> 0.3 at ~1 false alarm per 10k values is ~60 values;
    # a generous bound that a miscalibrated or blind detector still fails
    assert np.median(delays) <= 120, delays


def test_a_looser_false_alarm_target_detects_sooner() -> None:
    stream = zero_one(7, CHANGE + 1000, CHANGE)
    strict = make_streaming("glr", false_alarms_per_10k=0.01).update_many(stream)
    loose = make_streaming("glr", false_alarms_per_10k=10.0).update_many(stream)
    assert CHANGE <= loose[0] < strict[0]


def test_nothing_is_flagged_during_the_burn_in() -> None:
    wild = np.concatenate([np.zeros(100), np.ones(100)])  # a jump inside the burn-in
    detector = make_streaming("glr", burn_in=200)
    assert detector.update_many(wild).tolist() == []
    # afterwards the rate of the burn-in (0.5) is the normal, and all errors a change
    assert len(detector.update_many(np.ones(200))) > 0


def test_decreasing_errors_are_no_alarm() -> None:
    better = np.concatenate([zero_one(3, 1000), np.zeros(4000)])
    assert make_streaming("glr").update_many(better).tolist() == []
