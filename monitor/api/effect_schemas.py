"""The ``effect`` of a drift result in the HTTP API: how much a feature moved, in its own units.

These mirror the dicts :mod:`detectors.effects` computes and the pipeline stores in
``detection_results.effect`` (its docstring defines every number); one model per ``kind``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


class NumericSummary(BaseModel):
    """Of the finite values; ``sd`` is the sample standard deviation (ddof=1)."""

    mean: float | None
    median: float | None
    p5: float | None
    p95: float | None
    sd: float | None


class NumericEffect(BaseModel):
    kind: Literal["numeric"]
    reference: NumericSummary
    current: NumericSummary
    mean_shift_sd: float | None = Field(
        description="(current mean - reference mean) / reference sd"
    )
    size: float | None = Field(description="|mean_shift_sd|")


class CategoryShare(BaseModel):
    category: str
    reference: float = Field(description="share of the reference's non-missing values")
    current: float = Field(description="share of the window's non-missing values")


class CategoricalEffect(BaseModel):
    kind: Literal["categorical"]
    shares: list[CategoryShare] = Field(
        description="at most 10 categories, the largest change first"
    )
    new: list[str] = Field(description="in the window, never in the reference")
    vanished: list[str] = Field(description="in the reference, not in the window")
    left_out: int = Field(description="categories not listed in shares")
    total_variation: float | None = Field(
        description="half the sum of the absolute share changes (0 to 1)"
    )
    size: float | None = Field(description="total_variation")


class ComponentShift(BaseModel):
    component: int = Field(description="reference principal component, 1 = largest variance")
    variance_share: float | None = Field(description="its share of the reference's variance")
    shift_sd: float | None = Field(description="the mean's move along it, in reference sd")


class VectorEffect(BaseModel):
    kind: Literal["vector"]
    mean_shift: float | None = Field(description="length of the mean's move, embedding units")
    explained_share: float | None = Field(
        description="share of the squared mean shift along the first 10 reference components"
    )
    components: list[ComponentShift] = Field(
        description="the 3 components the mean moved most along"
    )
    size: float | None = Field(description="the largest |shift_sd|")


Effect = Annotated[NumericEffect | CategoricalEffect | VectorEffect, Field(discriminator="kind")]

_EFFECT: TypeAdapter[Effect] = TypeAdapter(Effect)


def effect_of(stored: dict[str, Any] | None) -> Effect | None:
    """The stored ``detection_results.effect`` JSON as its model (None stays None)."""
    return None if stored is None else _EFFECT.validate_python(stored)
