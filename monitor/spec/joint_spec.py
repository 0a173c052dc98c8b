"""A monitor's joint stage as declared: which multivariate tests run over its numeric features
together, with what share of the false-alarm budget (:mod:`detectors.joint` has the method)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from detectors import registry as detector_registry
from monitor.spec.detector_defaults import JOINT_DETECTORS, JOINT_SHARE
from monitor.spec.stored import _stored


class JointSpec(BaseModel):
    """The joint stage: one multivariate test over the monitor's numeric features together
    (two or more), or several Bonferroni-combined into one (:class:`detectors.joint.
    Bonferroni`), in one weighted correction family with the per-feature tests
    (:mod:`detectors.joint`). ``share`` is the part of the false-alarm budget it gets."""

    model_config = ConfigDict(extra="forbid")
    detector: str | list[str] = Field(default_factory=lambda: list(JOINT_DETECTORS))
    # one detector: its parameters; several: each one's parameters under its name
    # ({"fourier_mmd": {"n_frequencies": 128}}); a detector left out takes its defaults
    params: dict[str, Any] = Field(default_factory=dict)
    share: float = Field(default=JOINT_SHARE, gt=0.0, lt=1.0)
    # rows of each side the joint test uses at most (a seeded subsample); None: 10,000 when
    # every test's cost is linear in the rows (fourier_mmd, mahalanobis, ks_pca), else 1,000
    max_rows: int | None = Field(default=None, ge=10, le=100_000)
    # fourier_mmd, or mmd without a bandwidth: one test per factor of the median distance,
    # Bonferroni-combined (detectors.multivariate.fourier_mmd, detectors.joint.BandwidthsMMD)
    bandwidths: list[Annotated[float, Field(gt=0.0, le=100.0)]] = Field(
        default_factory=lambda: [0.25, 0.5, 1.0], min_length=1, max_length=8
    )

    def detectors(self) -> list[str]:
        """The joint tests' registry names, in order."""
        names = [self.detector] if isinstance(self.detector, str) else self.detector
        return [detector_registry.canonical(n) for n in names]

    def params_of(self, name: str) -> dict[str, Any]:
        """The parameters of the joint test ``name``."""
        if isinstance(self.detector, str):
            return dict(self.params)
        by_name = {detector_registry.canonical(k): v for k, v in self.params.items()}
        return dict(by_name.get(name) or {})

    @model_validator(mode="after")
    def _multivariate(self, info: ValidationInfo) -> Self:
        names = self.detectors()
        if not names:
            raise ValueError("joint.detector: name one multivariate detector or more")
        if len(set(names)) < len(names):
            raise ValueError(f"joint.detector names a test twice: {names}")
        if not isinstance(self.detector, str):
            unknown = sorted({detector_registry.canonical(k) for k in self.params} - set(names))
            if unknown:
                raise ValueError(
                    f"joint.params has {unknown}, not among the joint tests {names}; with "
                    "several tests, params maps each one's name to its parameters"
                )
            bad = sorted(k for k, v in self.params.items() if not isinstance(v, dict))
            if bad:
                raise ValueError(f"joint.params: the parameters of {bad} must be a mapping")
        for name in names:
            params = None if _stored(info) else self.params_of(name)
            spec = detector_registry.check(name, params)
            if not spec.multivariate:
                registry = detector_registry.REGISTRY
                multivariate = sorted(n for n, s in registry.items() if s.multivariate)
                raise ValueError(
                    f"joint detector {name!r} tests one column at a time; "
                    f"choose a multivariate one: {multivariate}"
                )
        return self
