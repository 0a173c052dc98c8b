"""How many permutations a permutation test draws, and which: enough that the floor never
decides, and other ones for every window.

How many.
A permutation p-value is ``(1 + #{permuted >= observed}) / (1 + P)``, never below
``1 / (P + 1)``. Under a correction over ``m`` tests the smallest level a p-value must pass is
``alpha / m`` (Bonferroni's level, and Benjamini-Hochberg's for the smallest p-value), so with
too few permutations a feature that drifts alone can never be flagged: with 200 permutations
and 21 tests, ``21 / 201 = 0.104 > 0.05`` however far the feature moved.

``n_permutations="auto"`` draws ``P = ceil(2 m / alpha) - 1``, so the floor is half the
smallest level and a p-value near that level is still resolved; at least the detector's own
minimum (200 for the kernel tests, 999 for Anderson-Darling on ties) and at most
:data:`MAX_PERMUTATIONS`. The family size ``m`` comes from the monitor (every feature of the
model is one test of one correction family: :func:`detectors.verdict.family_size`).

>>> resolve_permutations("auto", family_size=21, alpha=0.05, minimum=200)
839
>>> resolve_permutations("auto", family_size=1, alpha=0.05, minimum=200)
200
>>> resolve_permutations(99, family_size=21, alpha=0.05, minimum=200)  # as configured
99

Which. A permutation p-value is exact in level on average over the random permutations. One
fixed set of permutations, drawn from the same seed for every window, has a level of its own,
and a monitor running for months sees only that one: on 20,000 exchangeable Wasserstein
windows with 999 permutations, seeds 0 to 4 gave 6.0-6.6% of p-values below 0.05 (the level
of a 199-permutation set varied with a standard deviation of about 0.015 around 0.05 across
200 seeds). :func:`window_seed` therefore draws the permutations from the configured seed and
the window's own values: the same window always gets the same p-value, and different windows
different permutations, so the false-alarm rate over windows is the exact level.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

AUTO: Literal["auto"] = "auto"
# Beyond this the cost (linear in P: a (P x N) by (N x N) product for the kernel tests) is not
# worth it on a CPU; the floor 1e-5 still lets a lone drifting feature pass BH over up to
# 5,000 tests at alpha 0.1, 500 at alpha 0.01.
MAX_PERMUTATIONS = 100_000

Permutations = int | Literal["auto"]


def floor_permutations(family_size: int, alpha: float) -> int:
    """The fewest permutations whose smallest p-value is half of ``alpha / family_size``.

    >>> floor_permutations(21, 0.05), floor_permutations(1, 0.01)
    (839, 199)
    """
    return max(1, math.ceil(2 * max(family_size, 1) / alpha - 1e-9) - 1)


def resolve_permutations(
    n_permutations: Permutations, *, family_size: int, alpha: float, minimum: int
) -> int:
    """The number to draw: a configured integer as it is, ``"auto"`` from the family."""
    if n_permutations == AUTO:
        return min(MAX_PERMUTATIONS, max(minimum, floor_permutations(family_size, alpha)))
    return int(n_permutations)


def smallest_p_value(n_permutations: int) -> float:
    """The floor of a permutation p-value drawn with ``n_permutations`` permutations."""
    return 1.0 / (n_permutations + 1)


def check_permutations(value: object, minimum: int = 1) -> None:
    """A ValueError unless ``value`` is ``"auto"`` or an integer of at least ``minimum``."""
    if value == AUTO:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"n_permutations must be 'auto' or an integer >= {minimum}, got {value!r}")


def check_family_size(value: object) -> None:
    """A ValueError unless ``value`` is None or a positive integer."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"family_size must be a positive integer or None, got {value!r}")


def window_seed(seed: int, data: Any) -> int:
    """A seed for a window's permutations, from the configured ``seed`` and the window's bytes
    (a numpy array, or anything ``numpy.asarray`` takes): reproducible for the same window,
    different from one window to the next.

    >>> import numpy as np
    >>> a = np.arange(6.0).reshape(3, 2)
    >>> window_seed(0, a) == window_seed(0, a.copy()), window_seed(0, a) == window_seed(1, a)
    (True, False)
    """
    import numpy as np

    array = np.ascontiguousarray(data)
    digest = hashlib.blake2b(array.tobytes(), digest_size=8, key=str(int(seed)).encode())
    digest.update(repr((array.shape, array.dtype.str)).encode())
    # 63 bits: torch.Generator.manual_seed takes any non-negative int below 2**64
    return int.from_bytes(digest.digest(), "little") >> 1


def random_subsets(
    n_total: int, n_first: int, n_permutations: int, generator: torch.Generator
) -> torch.Tensor:
    """(P, n_total) float64 0/1 rows, each marking a uniformly random set of ``n_first`` of the
    ``n_total`` positions: the ``n_first`` smallest of uniform keys drawn from ``generator``.

    The same sets as ``argsort(keys)[:, :n_first]`` in half the time (a selection, not a sort);
    a row whose keys tie at the cut (chance about ``n_total^2 / 2^53``) is resolved by sorting.
    """
    import torch

    keys = torch.rand((n_permutations, n_total), generator=generator, dtype=torch.float64)
    if n_first <= 0:
        return torch.zeros_like(keys)
    cut = torch.kthvalue(keys, n_first, dim=1, keepdim=True).values
    mask = (keys <= cut).to(torch.float64)
    tied = mask.sum(dim=1) != n_first
    if bool(tied.any()):
        chosen = torch.argsort(keys[tied], dim=1)[:, :n_first]
        mask[tied] = torch.zeros_like(mask[tied]).scatter_(1, chosen, 1.0)
    return mask
