"""Concept drift on a stream of per-prediction values (errors, losses), wrapping frouros.

Batch detectors compare two windows; these detectors instead see one value at a time (for
instance 1 when the model was wrong and 0 when it was right, or a per-prediction loss) and say
at each step whether the stream has changed. ``glr`` (the default of a monitor's ``streaming``)
is Tidewatch's own (:mod:`detectors.streaming_glr`: CUSUMs over a grid of post-change rates,
calibrated on a burn-in to a false-alarm rate per 10,000 values); the others are frouros's
implementations, one class each (:class:`DDM`, :class:`ADWIN`, ...: ``ADWIN(delta=0.01)``) on
one base, :class:`StreamingDriftDetector`, with river's habits: ``update`` returns
``self``, the verdict of the last update is in ``drift_detected`` / ``warning_detected``,
``get_params()`` gives the configuration. :data:`STREAMING_DETECTORS` maps config names to
the classes.

After a drift
    frouros's detectors keep raising the flag after a drift (ADWIN's flag never clears, the
    CUSUM sums keep their value) until ``reset()`` is called. The wrapper therefore resets the
    frouros detector right after every update that detected drift, for every method: the drift
    is reported once, at the value that triggered it, and the detector learns the new concept
    from the next value on, as river does. ``n_seen`` keeps counting across resets.

Values each method accepts (checked, a ValueError otherwise; NaN and infinities never)
    ``ddm``, ``eddm``: 0 or 1 (an error indicator). ``hddm_a``, ``hddm_w``: values in [0, 1]
    (Hoeffding bounds need bounded values). ``adwin``: values >= 0 (frouros keeps a running
    total that must not go negative). ``page_hinkley``, ``cusum``, ``kswin``, ``glr``: any
    finite value; Page-Hinkley, CUSUM and ``glr`` detect increases only, as suits errors and
    losses.

Saved state
    ``state()`` pickles the frouros detector (and KSWIN's random generator) behind a header with
    a format version. Pickle runs code when loaded, so ``from_state`` must only ever be given
    bytes that Tidewatch wrote to its own database; it also refuses any class outside frouros,
    :mod:`detectors.streaming_glr`, numpy and a few builtins, which stops the usual pickle
    attacks but is no excuse to load bytes from elsewhere. A state written under another
    frouros version is refused (frouros's private attributes may differ): build a fresh
    detector from ``params`` instead.

KSWIN's randomness
    frouros's KSWIN samples with numpy's global generator, and its config reseeds it. Each
    KSWIN here has its own generator state (part of the saved state), swapped into numpy's
    global generator only for the length of an update and under a lock; the global
    generator's own state is left as it was. Code in another thread that draws from
    ``np.random`` during such an update would draw from the detector's state.
"""

from __future__ import annotations

import inspect
import io
import math
import pickle
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np
from frouros.detectors import concept_drift as frouros_cd

from detectors.streaming_glr import CusumGLR, GLRConfig
from detectors.streaming_state import Refused, RestrictedUnpickler

ValueKind = Literal["binary", "unit", "non_negative", "real"]


class StreamingDetector(Protocol):
    """The shape every streaming (concept drift) detector has."""

    name: str
    drift_detected: bool
    warning_detected: bool
    n_seen: int

    def update(self, value: float) -> Self: ...

    def state(self) -> bytes: ...

    @classmethod
    def from_state(cls, data: bytes) -> Self: ...


@dataclass(frozen=True)
class StreamingMethod:
    """One entry of the table: the frouros classes, the values accepted, the warning zone."""

    detector: type
    config: type
    values: ValueKind
    has_warning: bool
    # Checks frouros does not make, run on the full parameter set; a message means refusal
    extra_check: Callable[[dict[str, Any]], str | None] | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """Parameter names and default values, read from the frouros config's signature."""
        parameters = inspect.signature(self.config).parameters.items()
        return {n: p.default for n, p in parameters if p.default is not inspect.Parameter.empty}


def _no_two_sided(params: dict[str, Any]) -> str | None:
    # frouros 0.9's two-sided HDDM tests alarm on stationary data (HDDM-A compares a cut
    # point with itself at m = 0, HDDM-W builds a one-element tuple that is always true), so
    # the option is refused rather than flooding a monitor with false alarms.
    if params["two_sided_test"]:
        return "two_sided_test=True is refused: frouros 0.9 raises false alarms with it"
    return None


def _adwin_check(params: dict[str, Any]) -> str | None:
    if params["clock"] < 1:  # frouros accepts 0, then divides by it at the first update
        return f"clock must be at least 1, got {params['clock']}"
    return None


def _kswin_check(params: dict[str, Any]) -> str | None:
    if not 0.0 < params["alpha"] < 1.0:
        return f"alpha must be in (0, 1), got {params['alpha']}"
    # KSWIN draws num_test_instances values without replacement from the older part of the
    # window; frouros would only fail at the first full window
    if 2 * params["num_test_instances"] > params["min_num_instances"]:
        return (
            "num_test_instances must be at most half of min_num_instances (the window), got "
            f"{params['num_test_instances']} and {params['min_num_instances']}"
        )
    return None


_VALUE_RULES: dict[ValueKind, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "binary": (lambda v: (v == 0.0) | (v == 1.0), "0 or 1 (an error indicator)"),
    "unit": (lambda v: (v >= 0.0) & (v <= 1.0), "in [0, 1]"),
    "non_negative": (lambda v: v >= 0.0, ">= 0"),
    "real": (lambda v: np.ones(v.shape, dtype=bool), "finite"),
}

_MAGIC = b"TWSTREAM"
_STATE_VERSION = 1
_HEADER = struct.Struct(">8sH")
# KSWIN draws from numpy's global generator; swapping each detector's own generator in and out
# must not interleave between threads
_GLOBAL_RNG_LOCK = threading.Lock()
_STATE_KEYS = frozenset(
    (
        "method",
        "params",
        "n_seen",
        "drift_detected",
        "warning_detected",
        "frouros",
        "detector",
        "rng",
    )
)


def _check_param(method: str, name: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type the default has, or a ValueError naming the parameter."""
    where = f"{method}: parameter {name!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{where} must be True or False, got {value!r}")
        return bool(value)
    if isinstance(default, int) or default is None:  # the only None default is KSWIN's seed
        if value is None and default is None:
            return None
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{where} must be finite, got {value!r}")
    return float(value)


def _seeded_generator_state(seed: int | None) -> dict[str, Any]:
    """The MT19937 state ``np.random.seed(seed)`` would give (what frouros's KSWIN uses)."""
    state = np.random.RandomState(seed).get_state(legacy=False)
    return {"bit_generator": state["bit_generator"], "state": state["state"]}


@contextmanager
def _own_global_rng(holder: dict[str, Any]) -> Iterator[None]:
    """Run with ``holder["rng"]`` as the state of numpy's global generator, then put it back.

    The global generator's own state is left as it was; ``holder["rng"]`` is advanced by the
    draws made inside. (Swapping the bit generator's state is the cheapest public way; a
    KSWIN update costs about twice the KS test it runs because of it.)
    """
    bit_generator = np.random.get_bit_generator()
    with _GLOBAL_RNG_LOCK:
        saved = bit_generator.state
        bit_generator.state = holder["rng"]
        try:
            yield
        finally:
            holder["rng"] = bit_generator.state
            bit_generator.state = saved


class StreamingDriftDetector:
    """A frouros concept drift detector fed one value at a time (see the module docstring).

    Each method is a subclass (:class:`DDM`, :class:`ADWIN`, ...) whose keyword parameters are
    the frouros config's (``warning_level`` for DDM, ``delta`` for ADWIN, ``seed`` for KSWIN,
    ...). ``params`` (and ``get_params()``) holds all of them, defaults included, so that
    ``type(d)(**d.get_params())`` rebuilds the configuration.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.5])
    >>> detector = DDM()
    >>> detector.update_many(errors).tolist()
    [1034]
    >>> StreamingDriftDetector.from_state(detector.state()).n_seen
    2000
    >>> ADWIN(delta=0.01)
    ADWIN(clock=32, delta=0.01, m=5, min_window_size=5, min_num_instances=10)
    """

    # set by each method's class
    method: ClassVar[str]
    spec: ClassVar[StreamingMethod]

    def __init__(self, **params: Any) -> None:
        if not hasattr(type(self), "spec"):
            raise TypeError(
                "StreamingDriftDetector is the base class: use one of "
                f"{', '.join(c.__name__ for c in STREAMING_DETECTORS.values())}"
            )
        method, spec = self.method, self.spec
        defaults = spec.defaults
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(
                f"{method}: unknown parameter(s) {', '.join(unknown)}; valid ones are "
                f"{', '.join(sorted(defaults))}"
            )
        full = {
            name: _check_param(method, name, params.get(name, default), default)
            for name, default in defaults.items()
        }
        problem = spec.extra_check(full) if spec.extra_check is not None else None
        if problem is not None:
            raise ValueError(f"{method}: {problem}")
        self.name = method
        self.params = full
        self.n_seen = 0
        self.drift_detected = False
        self.warning_detected = False
        self._spec = spec
        # KSWIN draws from numpy's global generator (and its config reseeds it): each KSWIN
        # gets its own generator state, swapped in only while it runs
        self._random: dict[str, Any] | None = None
        if spec.detector is frouros_cd.KSWIN:
            try:
                self._random = {"rng": _seeded_generator_state(full["seed"])}
            except (ValueError, TypeError) as error:
                raise ValueError(f"{method}: bad seed {full['seed']!r}: {error}") from error
            with _own_global_rng({"rng": _seeded_generator_state(0)}):
                config = self._make_config(full)
        else:
            config = self._make_config(full)
        self._detector = spec.detector(config=config)

    def _make_config(self, params: dict[str, Any]) -> Any:
        try:
            return self.spec.config(**params)
        except (ValueError, TypeError) as error:  # frouros's own range checks
            raise ValueError(f"{self.method}: {error}") from error

    def get_params(self) -> dict[str, Any]:
        """The configuration, defaults included: ``type(d)(**d.get_params())`` rebuilds it."""
        return dict(self.params)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({shown})"

    def _check_values(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        rule, wanted = _VALUE_RULES[self.spec.values]
        bad = np.flatnonzero(~finite | ~rule(np.where(finite, values, 0.0)))
        if len(bad):
            i = int(bad[0])
            where = f"value at position {i}" if values.ndim and len(values) > 1 else "value"
            raise ValueError(f"{self.method}: {where} must be {wanted}, got {values[i]}")

    def update(self, value: float) -> Self:
        """Feed one value; ``drift_detected`` and ``warning_detected`` then describe it."""
        if isinstance(value, str | bytes) or np.ndim(value) != 0:
            raise ValueError(f"{self.method}: update takes one number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{self.method}: update takes one number, got {value!r}") from error
        self._check_values(np.asarray([number]))
        self._feed(number)
        return self

    def update_many(self, values: Iterable[float]) -> np.ndarray:
        """Feed the values in order; the positions in ``values`` where drift was detected.

        All values are checked before the first is fed, so a bad value leaves the detector
        as it was.
        """
        try:
            array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
            array = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{self.method}: values must be numbers ({error})") from error
        if array.ndim != 1:
            raise ValueError(f"{self.method}: values must be 1-D, got shape {array.shape}")
        self._check_values(array)
        drifts = [i for i, value in enumerate(array.tolist()) if self._feed(value)]
        return np.asarray(drifts, dtype=np.int64)

    def _feed(self, value: float) -> bool:
        # frouros's ADWIN divides by zero for cuts at exactly min_window_size + 1 values; the
        # infinite threshold it gets just skips that cut, so the warning is noise
        with np.errstate(divide="ignore"):
            if self._random is not None:
                with _own_global_rng(self._random):
                    self._detector.update(value=value)
            else:
                self._detector.update(value=value)
        self.n_seen += 1
        self.drift_detected = bool(self._detector.drift)
        self.warning_detected = self.spec.has_warning and bool(self._detector.warning)
        if self.drift_detected:
            self._detector.reset()  # see "After a drift" in the module docstring
        return self.drift_detected

    def state(self) -> bytes:
        """Everything needed to continue exactly where this detector is (trusted storage only)."""
        payload = {
            "method": self.method,
            "params": self.params,
            "n_seen": self.n_seen,
            "drift_detected": self.drift_detected,
            "warning_detected": self.warning_detected,
            "frouros": version("frouros"),
            "detector": self._detector,
            # plain data (a dict of a string, an array and ints), no numpy generator object
            "rng": None if self._random is None else self._random["rng"],
        }
        return _HEADER.pack(_MAGIC, _STATE_VERSION) + pickle.dumps(payload, protocol=5)

    @classmethod
    def from_state(cls, data: bytes) -> Self:
        """A detector that continues exactly where the one that wrote ``data`` stopped.

        Only for bytes Tidewatch wrote itself (see "Saved state" in the module docstring).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"state must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _HEADER.size or data[: len(_MAGIC)] != _MAGIC:
            raise ValueError("not a Tidewatch streaming detector state (bad header)")
        _, state_version = _HEADER.unpack_from(data)
        if state_version != _STATE_VERSION:
            raise ValueError(
                f"streaming state format version {state_version} is not supported "
                f"(this Tidewatch reads version {_STATE_VERSION})"
            )
        try:
            payload = RestrictedUnpickler(io.BytesIO(data[_HEADER.size :])).load()
        except Refused as error:
            raise ValueError(f"streaming state refused: {error}") from error
        except Exception as error:  # truncated or corrupted bytes fail in many ways
            raise ValueError(f"streaming state is corrupted: {error!r}") from error
        if not isinstance(payload, dict) or payload.get("method") not in STREAMING_DETECTORS:
            raise ValueError("streaming state is corrupted: no known method in it")
        missing = _STATE_KEYS - set(payload)
        if missing or not isinstance(payload["params"], dict):
            raise ValueError(f"streaming state is corrupted: lacks {sorted(missing) or 'params'}")
        if payload["frouros"] != version("frouros"):
            raise ValueError(
                f"streaming state was written with frouros {payload['frouros']}, this is "
                f"frouros {version('frouros')}; start a new detector with the same parameters"
            )
        detector = STREAMING_DETECTORS[payload["method"]](**payload["params"])
        if not isinstance(detector, cls):
            raise ValueError(f"streaming state is of {type(detector).__name__}, not {cls.__name__}")
        if not isinstance(payload["detector"], detector.spec.detector):
            raise ValueError("streaming state is corrupted: detector of the wrong class")
        detector._detector = payload["detector"]
        if payload["rng"] is not None:
            detector._random = {"rng": payload["rng"]}
        detector.n_seen = int(payload["n_seen"])
        detector.drift_detected = bool(payload["drift_detected"])
        detector.warning_detected = bool(payload["warning_detected"])
        return detector


class DDM(StreamingDriftDetector):
    """Drift Detection Method (Gama et al., 2004) on 0/1 errors, with a warning zone."""

    method = "ddm"
    spec = StreamingMethod(frouros_cd.DDM, frouros_cd.DDMConfig, "binary", has_warning=True)


class EDDM(StreamingDriftDetector):
    """Early DDM (Baena-García et al., 2006): distances between errors, with a warning zone."""

    method = "eddm"
    spec = StreamingMethod(frouros_cd.EDDM, frouros_cd.EDDMConfig, "binary", has_warning=True)


class ADWIN(StreamingDriftDetector):
    """Adaptive windowing (Bifet and Gavaldà, 2007) on non-negative values."""

    method = "adwin"
    spec = StreamingMethod(
        frouros_cd.ADWIN, frouros_cd.ADWINConfig, "non_negative", False, _adwin_check
    )


class PageHinkley(StreamingDriftDetector):
    """Page-Hinkley test (Page, 1954) for an increase of the mean."""

    method = "page_hinkley"
    spec = StreamingMethod(frouros_cd.PageHinkley, frouros_cd.PageHinkleyConfig, "real", False)


class HDDMA(StreamingDriftDetector):
    """HDDM with averages (Frías-Blanco et al., 2015), Hoeffding bounds on values in [0, 1]."""

    method = "hddm_a"
    spec = StreamingMethod(frouros_cd.HDDMA, frouros_cd.HDDMAConfig, "unit", True, _no_two_sided)


class HDDMW(StreamingDriftDetector):
    """HDDM with weighted averages (Frías-Blanco et al., 2015) on values in [0, 1]."""

    method = "hddm_w"
    spec = StreamingMethod(frouros_cd.HDDMW, frouros_cd.HDDMWConfig, "unit", True, _no_two_sided)


class KSWIN(StreamingDriftDetector):
    """Kolmogorov-Smirnov windowing (Raab et al., 2020), seeded per detector."""

    method = "kswin"
    spec = StreamingMethod(frouros_cd.KSWIN, frouros_cd.KSWINConfig, "real", False, _kswin_check)


class CUSUM(StreamingDriftDetector):
    """Cumulative sum (Page, 1954) for an increase of the mean."""

    method = "cusum"
    spec = StreamingMethod(frouros_cd.CUSUM, frouros_cd.CUSUMConfig, "real", has_warning=False)


class GLR(StreamingDriftDetector):
    """CUSUMs over a grid of post-change rates, calibrated on a burn-in (the default; see
    :mod:`detectors.streaming_glr`): 0/1 errors, or any values through a quantile of them."""

    method = "glr"
    spec = StreamingMethod(CusumGLR, GLRConfig, "real", has_warning=False)


# config name -> class, built from the classes
STREAMING_DETECTORS: dict[str, type[StreamingDriftDetector]] = {
    cls.method: cls for cls in (GLR, DDM, EDDM, ADWIN, PageHinkley, HDDMA, HDDMW, KSWIN, CUSUM)
}


def make_streaming(name: str, **params: Any) -> StreamingDriftDetector:
    """A streaming detector by config name (a key of :data:`STREAMING_DETECTORS`).

    >>> make_streaming("adwin", delta=0.01).params["delta"]
    0.01
    """
    if name not in STREAMING_DETECTORS:
        raise ValueError(
            f"unknown streaming method {name!r}; choose one of "
            f"{', '.join(sorted(STREAMING_DETECTORS))}"
        )
    return STREAMING_DETECTORS[name](**params)
