"""Every detector in the registry, built from its config name, runs through the same checks.

The reference scored against itself must not drift; a window of 400 rows with the first column
(or embedding) shifted by 1.5 standard deviations must.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors import REGISTRY
from detectors.registry import build, check

RNG = np.random.default_rng(21)


def _data(kind: str, n: int, shift: float) -> object:
    if kind == "numeric":
        return RNG.normal(size=(n, 3)) + shift
    if kind == "categorical":
        p = [0.5, 0.3, 0.2] if not shift else [0.1, 0.3, 0.6]
        return RNG.choice(np.array(["a", "b", "c"], dtype=object), size=(n, 2), p=p)
    return [RNG.normal(size=(n, 6)) + shift, RNG.normal(size=(n, 3))]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_conformance(name: str) -> None:
    spec = REGISTRY[name]
    (kind,) = spec.kinds
    ref = _data(kind, 600, 0.0)
    detector = build(name, device="cpu")
    names = ["a", "b", "c"][: len(ref) if kind == "vector" else ref.shape[1]]  # type: ignore[arg-type,union-attr]
    detector.fit(ref, names)
    same = detector.score(ref)  # identical samples never drift
    moved = detector.score(_data(kind, 400, 1.5))
    assert same.features == moved.features == tuple(names) == detector.features_
    assert same.method == name
    for result in (same, moved):
        assert result.statistic.shape == (len(names),)
        p = result.p_value[~np.isnan(result.p_value)]
        assert ((p >= 0) & (p <= 1)).all()
        assert result.drift.dtype == bool
    assert not same.drift.any()
    assert moved.drift[0]  # the first column (or embedding) is the shifted one


def test_check_refuses_what_a_monitor_could_get_wrong() -> None:
    with pytest.raises(ValueError, match="unknown detector 'magic'"):
        check("magic")
    with pytest.raises(ValueError, match="does not accept 'categorical'"):
        check("ks", kind="categorical")
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['bins'\]; it takes"):
        check("psi", {"bins": 3})
    with pytest.raises(ValueError, match="n_bins must be at least 2"):
        check("psi", {"n_bins": 1})
    with pytest.raises(ValueError, match="device"):
        check("ks", {"device": "cuda"})  # set by the service, not by a monitor
    assert check("mmd", {"n_permutations": 50}, kind="vector").multivariate
    assert check("psi", {"n_permutations": "auto"}, kind="numeric").threshold_rows == 1000
    with pytest.raises(ValueError, match="'auto' or an integer"):
        check("mmd", {"n_permutations": "many"})
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['family_size'\]"):
        check("mmd", {"family_size": 3})  # set by the service from the monitor's features


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_parameters_are_configuration_and_fitted_state_is_apart(name: str) -> None:
    """river's and scikit-learn's habits: ``get_params()`` rebuilds the detector, ``repr``
    shows it, and ``fit`` adds only trailing-underscore or private attributes."""
    spec = REGISTRY[name]
    detector = spec.cls(device="cpu")
    params = detector.get_params()
    assert set(params) == set(spec.cls.param_names())
    assert set(spec.parameters()) <= set(params)
    rebuilt = spec.cls(**params)
    assert rebuilt.get_params() == params
    assert repr(rebuilt) == repr(detector)
    shown = repr(detector)
    assert shown.startswith(f"{spec.cls.__name__}(") and "device='cpu'" in shown
    (kind,) = spec.kinds
    data = _data(kind, 200, 0.0)
    before = set(vars(detector))
    detector.fit(data[0] if kind == "vector" else data)  # type: ignore[index]
    added = set(vars(detector)) - before
    assert all(a.endswith("_") or a.startswith("_") for a in added), added
    assert detector.get_params() == params  # fitting changes no parameter


@pytest.mark.parametrize("name", sorted(n for n, s in REGISTRY.items() if s.multivariate))
def test_multivariate_results_are_one_dimensional(name: str) -> None:
    detector = REGISTRY[name].cls(device="cpu")
    ref = _data("vector", 200, 0.0)[0]
    result = detector.fit(ref).score(ref)
    for field in ("statistic", "p_value", "p_adjusted", "drift", "n_reference", "n_current"):
        assert getattr(result, field).shape == (1,), field
    assert result.features == ("*",)
    assert np.isfinite(result.statistic[0]) and not result.drift[0]  # the reference itself


def test_former_name_ks_pca_still_loads() -> None:
    from monitor.spec.model import DetectorChoice, MonitorConfig

    assert check("ks-pca", kind="vector").name == "ks_pca"
    stored = MonitorConfig.model_validate({"detectors": {"vector": "ks-pca", "numeric": "ks"}})
    assert stored.detector("vector").name == "ks_pca"
    assert DetectorChoice(name="ks-pca").name == "ks_pca"
    assert MonitorConfig().detector("vector").name == "ks_mmd"  # the default since issue #18
