"""Samplers: reproducible, unbiased after weighting, bounded, thread-safe, never raising.

Statistical bounds are 5 binomial standard deviations (a false failure about once in 3.5
million runs); the seeds are fixed, so the tests are deterministic anyway.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collectors import TelemetryClient
from collectors.sampling import (
    KeepAll,
    RateSampler,
    ReservoirSampler,
    StratifiedSampler,
    make_sampler,
)
from monitor.server import free_port


def rec(label: Any) -> dict[str, Any]:
    return {"prediction": {"label": label}}


def test_rate_sampler_is_reproducible_and_keeps_its_share() -> None:
    a = [RateSampler(rate=0.3, seed=7).keep({}) for _ in range(1)]
    first = RateSampler(rate=0.3, seed=7)
    second = RateSampler(rate=0.3, seed=7)
    other = RateSampler(rate=0.3, seed=8)
    runs = [[s.keep({}) for _ in range(1000)] for s in (first, second, other)]
    assert runs[0] == runs[1] != runs[2] and a[0] in (None, 0.3)
    n = 100_000
    sampler = RateSampler(rate=0.1, seed=1)
    kept = sum(sampler.keep({}) is not None for _ in range(n))
    assert abs(kept - n * 0.1) < 5 * math.sqrt(n * 0.1 * 0.9)


def test_stratified_keeps_rare_classes_and_weights_give_true_counts() -> None:
    clock = [0.0]
    sampler = StratifiedSampler(
        rate=0.05, min_per_class=10, window_seconds=60, seed=3, clock=lambda: clock[0]
    )
    truth: Counter[str] = Counter()
    weighted: Counter[str] = Counter()
    rng = np.random.default_rng(0)
    for minute in range(20):
        clock[0] = minute * 60.0
        labels = ["common"] * 2000 + ["rare"] * 7
        rng.shuffle(labels)
        for label in labels:
            truth[label] += 1
            p = sampler.keep(rec(label))
            if p is not None:
                weighted[label] += 1 / p
    assert weighted["rare"] == truth["rare"]  # 7 per window < min_per_class: all kept, p = 1
    # common: 10 sure per window, the rest Bernoulli(0.05) weighted by 20
    rest = truth["common"] - 20 * 10
    sd = math.sqrt(rest * 0.05 * 0.95) / 0.05
    assert abs(weighted["common"] - truth["common"]) < 5 * sd


def test_reservoir_bounds_each_window_and_is_uniform() -> None:
    clock = [0.0]
    sampler = ReservoirSampler(size=5, window_seconds=10, seed=0, clock=lambda: clock[0])
    for i in range(3):
        sampler.offer({"id": i})  # a small window: everything kept
    clock[0] = 10.0
    for i in range(100):
        sampler.offer({"id": 100 + i})
    clock[0] = 20.0
    drained = sampler.drain()
    small = [(r["id"], p) for r, p in drained if r["id"] < 100]
    big = [(r["id"], p) for r, p in drained if r["id"] >= 100]
    assert sorted(small) == [(0, 1.0), (1, 1.0), (2, 1.0)]
    assert len(big) == 5 and all(p == 0.05 for _, p in big)
    assert sampler.drain() == []
    # uniformity: over 2,000 seeded reservoirs of 5 out of 50, each position is kept ~10%
    hits = np.zeros(50)
    for seed in range(2000):
        r = ReservoirSampler(size=5, window_seconds=1, seed=seed, clock=lambda: 0.0)
        for i in range(50):
            r.offer({"id": i})
        for record, _ in r.drain(now=1.0):
            hits[record["id"]] += 1
    expected, sd = 2000 * 0.1, math.sqrt(2000 * 0.1 * 0.9)
    assert np.all(np.abs(hits - expected) < 5 * sd)


def test_threads_lose_nothing_and_odd_records_never_raise() -> None:
    sampler = StratifiedSampler(rate=0.5, min_per_class=0, seed=1)
    reservoir = ReservoirSampler(size=10_000, window_seconds=3600, seed=1)
    kept = Counter[bool]()
    lock = threading.Lock()

    def work() -> None:
        local = Counter[bool]()
        for i in range(5000):
            local[sampler.keep(rec(i % 3)) is not None] += 1
            reservoir.offer({"id": i})
        with lock:
            kept.update(local)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(kept.values()) == 20_000
    assert len(reservoir.drain(now=float("inf"))) == 10_000
    for odd in ({}, {"prediction": None}, {"prediction": ["x"]}, "not a dict", None):
        assert sampler.keep(odd) in (None, 0.5)  # type: ignore[arg-type]


def test_bad_parameters_and_specs() -> None:
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ValueError, match="rate must be in"):
            RateSampler(rate=bad)
    with pytest.raises(ValueError, match="size"):
        ReservoirSampler(size=0, window_seconds=1)
    with pytest.raises(ValueError, match="window_seconds"):
        StratifiedSampler(rate=0.5, window_seconds=0)
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("magic:3")
    assert isinstance(make_sampler(None), KeepAll)
    assert isinstance(make_sampler(0.2), RateSampler)
    assert isinstance(make_sampler("0.2"), RateSampler) and make_sampler("rate:0.2").rate == 0.2
    with pytest.raises(ValueError, match="rate must be"):
        make_sampler("2")
    assert isinstance(make_sampler("stratified:0.2"), StratifiedSampler)


def test_the_client_sends_the_rate_with_each_batch(tmp_path: Path) -> None:
    """Kept records leave in batches per sampling rate; left-out ones are counted."""
    url = f"http://127.0.0.1:{free_port()}"  # down: the batches land in the spool to inspect
    client = TelemetryClient(
        url,
        "plankton",
        "k",
        flush_interval=0.01,
        max_retries=0,
        spool_dir=tmp_path,
        sampler=StratifiedSampler(rate=0.25, min_per_class=2, seed=4),
    )
    for _ in range(200):
        client.log({"x": 1.0}, {"label": "a"})
    client.close(timeout=10, drain_timeout=0)
    stats = client.stats
    assert stats["logged"] + stats["sampled_out"] == 200
    import json

    rates = Counter[float]()
    for path in tmp_path.glob("*.json"):
        body = json.loads(path.read_bytes())
        rates[body["sampling_rate"]] += len(body["records"])
    assert rates[1.0] == 2 and rates[0.25] == stats["logged"] - 2


def test_the_client_sends_a_reservoir_per_window(tmp_path: Path) -> None:
    clock = [0.0]
    reservoir = ReservoirSampler(size=10, window_seconds=60, seed=2, clock=lambda: clock[0])
    url = f"http://127.0.0.1:{free_port()}"  # down: the batches land in the spool to inspect
    client = TelemetryClient(
        url,
        "plankton",
        "k",
        flush_interval=0.01,
        max_retries=0,
        spool_dir=tmp_path,
        sampler=reservoir,
    )
    for i in range(100):
        client.log({"x": float(i)}, {"label": "a"})
    clock[0] = 61.0  # the window ends: 10 of its 100 records leave, at rate 0.1
    for i in range(5):
        client.log({"x": 1000.0 + i}, {"label": "a"})
    client.close(
        timeout=10, drain_timeout=0
    )  # the last window (5 records, all kept) ends with the client
    import json

    rates = Counter[float]()
    for path in tmp_path.glob("*.json"):
        body = json.loads(path.read_bytes())
        rates[body["sampling_rate"]] += len(body["records"])
    assert rates == {0.1: 10, 1.0: 5}
    assert client.stats["logged"] == 15
