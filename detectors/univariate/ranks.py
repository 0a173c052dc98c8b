"""Midranks in the pooled sample, batched over features (for CvM and Anderson-Darling)."""

from __future__ import annotations

import torch

from detectors.univariate.columns import SortedColumns, pooled


def searchsorted_both(
    sorted_values: torch.Tensor, at: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Number of entries strictly below and at-or-below each value of ``at``, as float64."""
    at = at.contiguous()
    left = torch.searchsorted(sorted_values, at, right=False).to(torch.float64)
    right = torch.searchsorted(sorted_values, at, right=True).to(torch.float64)
    return left, right


def midranks(ref: SortedColumns, cur: SortedColumns) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based midranks (ties averaged, as ``rankdata(method="average")``) of each sample's
    sorted values in the pooled sample. Entries past a feature's finite count are padding."""
    z = pooled(ref, cur)
    out = []
    for sample in (ref.values, cur.values):
        left, right = searchsorted_both(z, sample)
        out.append((left + right + 1) / 2)
    return out[0], out[1]


def valid_mask(columns: SortedColumns) -> torch.Tensor:
    """True for the finite entries of each sorted row (they come first)."""
    positions = torch.arange(columns.values.shape[1], device=columns.values.device)
    return positions[None, :] < columns.counts[:, None]
