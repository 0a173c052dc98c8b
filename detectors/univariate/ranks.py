"""Midranks in the pooled sample, batched over features (for CvM and Anderson-Darling)."""

from __future__ import annotations

import torch

from detectors.univariate.columns import SortedColumns


def searchsorted_both(
    sorted_values: torch.Tensor, at: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Number of entries strictly below and at-or-below each value of ``at``, as float64."""
    at = at.contiguous()
    left = torch.searchsorted(sorted_values, at, right=False).to(torch.float64)
    right = torch.searchsorted(sorted_values, at, right=True).to(torch.float64)
    return left, right


def tie_bounds(sorted_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each entry of each sorted row: entries strictly below it and at-or-below it in its
    own row (the first index of its tie group, and one past the last), as float64."""
    k = torch.arange(sorted_values.shape[1], device=sorted_values.device)
    k = k[None, :].expand_as(sorted_values)
    starts = torch.ones_like(sorted_values, dtype=torch.bool)
    starts[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    below = torch.cummax(torch.where(starts, k, torch.zeros_like(k)), dim=1).values
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    big = torch.full_like(k, sorted_values.shape[1])
    upto = torch.where(ends, k + 1, big).flip(1).cummin(dim=1).values.flip(1)
    return below.to(torch.float64), upto.to(torch.float64)


def midranks(
    ref: SortedColumns,
    cur: SortedColumns,
    ref_ties: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based midranks (ties averaged, as ``rankdata(method="average")``) of each sample's
    sorted values in the pooled sample. Entries past a feature's finite count are padding.

    A value's midrank is the average of the pooled counts strictly below it and at-or-below it,
    plus one half: its own sample's counts come from its tie groups, the other sample's from one
    search, so the pooled sample is never sorted. ``ref_ties`` (``tie_bounds`` of the
    reference) may be computed once at fit.
    """
    ref_lt, ref_le = ref_ties if ref_ties is not None else tie_bounds(ref.values)
    cur_lt, cur_le = tie_bounds(cur.values)
    cross_lt, cross_le = searchsorted_both(cur.values, ref.values)  # current values below ref
    rx = (ref_lt + ref_le + 1) / 2 + (cross_lt + cross_le) / 2
    cross_lt, cross_le = searchsorted_both(ref.values, cur.values)  # reference values below cur
    ry = (cur_lt + cur_le + 1) / 2 + (cross_lt + cross_le) / 2
    return rx, ry


def valid_mask(columns: SortedColumns) -> torch.Tensor:
    """True for the finite entries of each sorted row (they come first)."""
    positions = torch.arange(columns.values.shape[1], device=columns.values.device)
    return positions[None, :] < columns.counts[:, None]
