"""Distances between binned distributions: PSI, Jensen-Shannon, Hellinger, KL divergence.

Bins are fitted once on the reference: ``n_bins`` bins with the reference's quantiles as edges
(so each holds about the same share of the reference), open at both ends so every current value
falls in a bin. Discrete features give repeated edges, hence empty bins on both sides, which add
nothing to any of the distances. Counts of all features are taken in one batched
``searchsorted``. PSI and KL need every proportion positive: empty bins get ``epsilon`` (1e-4,
Evidently's choice) before the logarithm; Jensen-Shannon and Hellinger use the raw proportions.

Default thresholds (drift when the distance exceeds it) are Evidently's defaults for the same
stat tests: 0.1 each. With ``n_permutations > 0`` a permutation p-value decides instead;
``n_permutations="auto"`` draws enough for the smallest p-value to pass the correction over
``family_size`` tests (at least 999; see :mod:`detectors.permutations`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
import torch

from detectors.base import check_matrix, drift_result, feature_names
from detectors.device import resolve_device
from detectors.params import Params
from detectors.permutations import (
    Permutations,
    check_family_size,
    check_permutations,
    resolve_permutations,
    window_seed,
)
from detectors.result import DriftResult
from detectors.univariate.columns import SortedColumns, pooled, sort_columns
from detectors.univariate.permutation import permutation_p_values

EPSILON = 1e-4


def quantile_edges(ref: SortedColumns, n_bins: int) -> torch.Tensor:
    """(features, n_bins - 1) interior edges at the reference quantiles (linear, as numpy)."""
    q = torch.arange(1, n_bins, device=ref.values.device, dtype=torch.float64) / n_bins
    last = (ref.counts - 1).clamp(min=0).to(torch.float64)[:, None]
    position = q[None, :] * last
    lower = position.floor().long()
    upper = position.ceil().long()
    frac = position - lower
    lo = ref.values.gather(1, lower)
    hi = ref.values.gather(1, upper)
    edges = lo + (hi - lo) * frac
    # a feature with no finite reference value has +inf edges: everything lands in bin 0
    return torch.where(torch.isfinite(edges), edges, torch.full_like(edges, float("inf")))


def bin_proportions(
    sorted_values: torch.Tensor, counts: torch.Tensor, edges: torch.Tensor
) -> torch.Tensor:
    """(features, n_bins) share of each feature's finite values in each bin."""
    # values below each edge (values equal to an edge go to the bin above it)
    below = torch.searchsorted(sorted_values, edges.contiguous(), right=False)
    below = torch.minimum(below, counts[:, None])
    zero = torch.zeros_like(counts)[:, None]
    cumulative = torch.cat([zero, below, counts[:, None]], dim=1).to(torch.float64)
    return (cumulative[:, 1:] - cumulative[:, :-1]) / counts.clamp(min=1).to(torch.float64)[:, None]


def psi(ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    r, c = _smoothed(ref), _smoothed(cur)
    return ((c - r) * torch.log(c / r)).sum(dim=-1)


def kl_divergence(ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """KL(reference || current), natural log, after smoothing and renormalising: as Evidently's
    ``kl_div`` test, ``scipy.stats.entropy(reference, current)``."""
    r, c = _smoothed(ref), _smoothed(cur)
    r, c = r / r.sum(dim=-1, keepdim=True), c / c.sum(dim=-1, keepdim=True)
    return (r * torch.log(r / c)).sum(dim=-1)


def jensen_shannon(ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon distance (square root of the divergence), natural logarithm, as
    ``scipy.spatial.distance.jensenshannon``."""
    m = (ref + cur) / 2

    def kl(p: torch.Tensor) -> torch.Tensor:
        safe = torch.where(p > 0, p / torch.where(m > 0, m, torch.ones_like(m)), torch.ones_like(p))
        return (p * torch.log(safe)).sum(dim=-1)

    return torch.sqrt(((kl(ref) + kl(cur)) / 2).clamp(min=0))


def hellinger(ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))``, equal to ``||sqrt p - sqrt q|| / sqrt 2``."""
    return torch.sqrt((1 - torch.sqrt(ref * cur).sum(dim=-1)).clamp(min=0))


def _smoothed(p: torch.Tensor) -> torch.Tensor:
    return torch.where(p > 0, p, torch.full_like(p, EPSILON))


class _BinnedDistance(Params):
    """Shared fit/score of the binned distances; subclasses name the distance function."""

    method: ClassVar[str]

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        """The distance between proportions over the last axis (subclasses name it)."""
        raise NotImplementedError

    def __init__(
        self,
        *,
        device: str = "auto",
        n_bins: int = 10,
        threshold: float = 0.1,
        n_permutations: Permutations = 0,
        seed: int = 0,
        alpha: float = 0.05,
        correction: str = "bh",
        family_size: int | None = None,
    ) -> None:
        if n_bins < 2:
            raise ValueError("n_bins must be at least 2")
        check_permutations(n_permutations, minimum=0)
        check_family_size(family_size)
        self.device = device
        self.n_bins = n_bins
        self.threshold = threshold
        self.n_permutations = n_permutations
        self.seed = seed
        self.alpha = alpha
        self.correction = correction
        self.family_size = family_size
        self._device = resolve_device(device)
        self._ref: SortedColumns | None = None
        self._edges: torch.Tensor | None = None
        self._ref_props: torch.Tensor | None = None
        self.features_: tuple[str, ...] = ()

    def fit(self, reference: np.ndarray, features: Sequence[str] | None = None) -> Self:
        reference = check_matrix(reference, name="reference")
        self.features_ = feature_names(features, reference.shape[1])
        self._ref = sort_columns(reference, self._device)
        self._edges = quantile_edges(self._ref, self.n_bins)
        self._ref_props = bin_proportions(self._ref.values, self._ref.counts, self._edges)
        return self

    def permutations(self) -> int:
        """How many permutations ``score`` draws: ``n_permutations``, or with ``"auto"`` enough
        for the correction over ``family_size`` tests (this detector's features if None)."""
        return resolve_permutations(
            self.n_permutations,
            family_size=self.family_size or len(self.features_),
            alpha=self.alpha,
            minimum=999,
        )

    def score(self, current: np.ndarray) -> DriftResult:
        if self._ref is None or self._edges is None or self._ref_props is None:
            raise RuntimeError("call fit(reference) before score(current)")
        current = check_matrix(current, name="current", n_features=len(self.features_))
        cur = sort_columns(current, self._device)
        cur_props = bin_proportions(cur.values, cur.counts, self._edges)
        statistic = self.distance(self._ref_props, cur_props).cpu().numpy()
        n_ref, n_cur = self._ref.counts_numpy(), cur.counts_numpy()
        p_value = None
        drawn = self.permutations()
        if drawn:
            p_value = permutation_p_values(
                pooled(self._ref, cur),
                n_ref,
                n_cur,
                statistic,
                self._permuted_statistics,
                n_permutations=drawn,
                seed=window_seed(self.seed, current),
                per_feature=8 * (self.n_bins + 1),
            )
        return drift_result(
            method=self.method,
            features=self.features_,
            statistic=statistic,
            p_value=p_value,
            alpha=self.alpha,
            correction=self.correction,
            n_reference=n_ref,
            n_current=n_cur,
            threshold=self.threshold,
            extra={
                "n_permutations": np.full(len(self.features_), drawn, dtype=np.int64),
                "reference_bins": self._ref_props.cpu().numpy(),
                "current_bins": cur_props.cpu().numpy(),
            },
        )

    def _permuted_statistics(
        self, members: torch.Tensor, z: torch.Tensor, counts: torch.Tensor, n_ref: int, n_cur: int
    ) -> torch.Tensor:
        # Each permuted split is binned on its own reference's quantiles, as the observed split
        # is on the reference's: bins fitted once on the observed reference would hold exactly
        # a tenth of it each, while a permuted reference's shares scatter, and the observed
        # statistic would not be exchangeable with the permuted ones (KL with those bins gave
        # 8.5% false alarms at alpha 0.05).
        p, n = counts.shape[0], z.shape[1]
        ref_counts = torch.arange(n + 1, device=z.device, dtype=torch.float64) - counts
        q = torch.arange(1, self.n_bins, device=z.device, dtype=torch.float64) / self.n_bins
        position = q * (n_ref - 1)  # as quantile_edges: linear between order statistics
        lower, upper = position.floor(), position.ceil()
        frac = position - lower

        def order_statistic(rank: torch.Tensor) -> torch.Tensor:
            # pooled position of the permuted reference's value of 0-based rank ``rank``: where
            # its running count first reaches rank + 1 (the same positions for every feature)
            wanted = (rank + 1).expand(p, -1).contiguous()
            return torch.searchsorted(ref_counts[:, 1:].contiguous(), wanted)

        lo, hi = z[:, order_statistic(lower)], z[:, order_statistic(upper)]  # (F, P, B - 1)
        edges = lo + (hi - lo) * frac
        f = z.shape[0]
        # pooled values below each edge (values equal to an edge go to the bin above)
        below = torch.searchsorted(z.contiguous(), edges.reshape(f, -1), right=False)
        below = below.view(f, p, -1)
        cur_below = counts[torch.arange(p, device=z.device)[None, :, None], below]
        ends = torch.zeros((f, p, 1), dtype=torch.float64, device=z.device)
        cur_cum = torch.cat([ends, cur_below, ends + n_cur], dim=2)
        ref_cum = torch.cat([ends, below.to(torch.float64) - cur_below, ends + n_ref], dim=2)
        cur_props = (cur_cum[..., 1:] - cur_cum[..., :-1]) / n_cur
        ref_props = (ref_cum[..., 1:] - ref_cum[..., :-1]) / n_ref
        return self.distance(ref_props, cur_props)


class PSI(_BinnedDistance):
    """Population stability index per numeric feature, ``sum (c - r) ln(c / r)``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(2000, 2))
    >>> PSI(device="cpu").fit(ref).score(ref[:1000] + [0.0, 1.0]).drift.tolist()
    [False, True]
    """

    method = "psi"

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        return psi(ref, cur)


class JensenShannon(_BinnedDistance):
    """Jensen-Shannon distance per numeric feature (natural log; in [0, sqrt(ln 2)]).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(2000, 2))
    >>> JensenShannon(device="cpu").fit(ref).score(ref[:1000] + [0.0, 1.0]).drift.tolist()
    [False, True]
    """

    method = "jensen_shannon"

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        return jensen_shannon(ref, cur)


class Hellinger(_BinnedDistance):
    """Hellinger distance per numeric feature, in [0, 1].

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(2000, 2))
    >>> Hellinger(device="cpu").fit(ref).score(ref[:1000] + [0.0, 1.0]).drift.tolist()
    [False, True]
    """

    method = "hellinger"

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        return hellinger(ref, cur)


class KLDivergence(_BinnedDistance):
    """KL divergence ``KL(reference || current)`` of the binned distributions.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(2000, 2))
    >>> KLDivergence(device="cpu").fit(ref).score(ref[:1000] + [0.0, 1.0]).drift.tolist()
    [False, True]
    """

    method = "kl_divergence"

    def distance(self, ref: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        return kl_divergence(ref, cur)
