"""A drift result's effect size in words, for people: "mean 0.55 -> 0.35 (-2.1 sd)".

The effect is the JSON the detection pipeline stores with each result (its fields are defined
in ``detectors/effects.py``); numbers get 3 significant digits, shares are percentages.
"""

from __future__ import annotations

from typing import Any

MAX_CATEGORIES_SAID = 3  # categories named in one line; the report lists them all
# how people read the stored feature "*": the monitor's joint test over its numeric features
JOINT_LABEL = "numeric features together (joint test)"


def feature_label(feature: str) -> str:
    """A feature's name for people: the joint stage's ``"*"`` in words, others as they are.

    >>> feature_label("*"), feature_label("brightness")
    ('numeric features together (joint test)', 'brightness')
    """
    return JOINT_LABEL if feature == "*" else feature


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _percent(share: float) -> str:
    return f"{100 * share:.3g}%"


def _numeric(effect: dict[str, Any]) -> str:
    ref, cur, shift = effect["reference"], effect["current"], effect.get("mean_shift_sd")
    text = f"mean {_num(ref['mean'])} -> {_num(cur['mean'])}"
    return text if shift is None else f"{text} ({shift:+.3g} sd)"


def _categorical(effect: dict[str, Any]) -> str:
    new, vanished = set(effect.get("new", ())), set(effect.get("vanished", ()))
    said = []
    for share in effect["shares"][:MAX_CATEGORIES_SAID]:
        category = share["category"]
        mark = " (new)" if category in new else " (vanished)" if category in vanished else ""
        said.append(
            f"{category} {_percent(share['reference'])} -> {_percent(share['current'])}{mark}"
        )
    return ", ".join(said)


def _vector(effect: dict[str, Any]) -> str:
    if effect.get("mean_shift") is None:
        return ""
    text = f"mean moved {_num(effect['mean_shift'])}"
    top = effect["components"][0] if effect["components"] else None
    if top is not None and top["shift_sd"] is not None:
        text += f", most along component {top['component']} ({top['shift_sd']:+.3g} sd)"
    if effect.get("explained_share") is not None:
        text += (
            f"; {_percent(effect['explained_share'])} of the move along the reference's"
            " main directions"
        )
    return text


def effect_text(effect: dict[str, Any] | None) -> str:
    """The effect in one line; "" when there is none (older results, a multivariate "*").

    >>> effect_text({"kind": "numeric", "reference": {"mean": 0.55}, "current": {"mean": 0.35},
    ...              "mean_shift_sd": -2.1})
    'mean 0.55 -> 0.35 (-2.1 sd)'
    >>> effect_text({"kind": "categorical", "new": ["flowcam-3"], "vanished": [],
    ...              "shares": [{"category": "flowcam-3", "reference": 0.0, "current": 0.48}]})
    'flowcam-3 0% -> 48% (new)'
    """
    if not effect:
        return ""
    kind = effect.get("kind")
    if kind == "numeric":
        return _numeric(effect)
    if kind == "categorical":
        return _categorical(effect)
    if kind == "vector":
        return _vector(effect)
    return ""
