"""Effect sizes in words, and in the alert e-mail's drifted-feature table."""

from __future__ import annotations

import dataclasses
import html
import re

import numpy as np

from alerts.effect_text import effect_text
from alerts.email import render_email
from alerts.notification import FeatureDrift, Notification
from detectors.effects import EffectReference


def test_numeric_effect_in_words() -> None:
    # reference 0.5 / 0.6 (mean 0.55, sd 0.0577), window 0.3 / 0.4 (mean 0.35)
    effect = EffectReference.fit(numeric={"b": np.array([0.5, 0.6] * 2)}).compare(
        numeric={"b": np.array([0.3, 0.4] * 2)}
    )["b"]
    assert effect_text(effect) == "mean 0.55 -> 0.35 (-3.46 sd)"  # -0.2 / sqrt(1/300)


def test_categorical_effect_in_words_names_new_and_vanished_categories() -> None:
    reference = np.array(["a", "a", "a", "b"], dtype=object)
    current = np.array(["a", "flowcam-3", "a", "flowcam-3"], dtype=object)
    effect = EffectReference.fit(categorical={"c": reference}).compare(categorical={"c": current})[
        "c"
    ]
    assert effect_text(effect) == "flowcam-3 0% -> 50% (new), a 75% -> 50%, b 25% -> 0% (vanished)"


def test_vector_effect_in_words() -> None:
    reference = np.array([[-2.0, 0], [2, 0], [0, -1], [0, 1]])
    effect = EffectReference.fit(vector={"e": reference}).compare(
        vector={"e": np.array([[2.0, 0.5]])}
    )["e"]
    # |(2, 0.5)| = 2.06; along component 1 (x, variance 8/3): 2 / 1.633 = 1.22 sd
    assert effect_text(effect) == (
        "mean moved 2.06, most along component 1 (+1.22 sd); "
        "100% of the move along the reference's main directions"
    )


def test_no_effect_says_nothing() -> None:
    assert effect_text(None) == ""
    assert effect_text({"kind": "vector", "mean_shift": None, "components": []}) == ""


def test_the_mail_table_shows_each_effect(firing: Notification) -> None:
    numeric = {
        "kind": "numeric",
        "reference": {"mean": 0.55},
        "current": {"mean": 0.35},
        "mean_shift_sd": -2.1,
    }
    camera = {
        "kind": "categorical",
        "shares": [{"category": "flowcam-3", "reference": 0.0, "current": 0.48}],
        "new": ["flowcam-3"],
        "vanished": [],
    }
    drifted = [
        FeatureDrift("brightness", "ks", 0.412, 1.2e-9, effect=numeric),
        FeatureDrift("camera", "chi2", 18.5, 0.002, effect=camera),
        FeatureDrift("area", "wasserstein", 0.087, 3.4e-4),  # stored before effects: no words
    ]
    notice = dataclasses.replace(firing, drifted=drifted)
    message = render_email(notice, "tidewatch@example.org")
    text = message.get_body(preferencelist=("plain",))
    body = message.get_body(preferencelist=("html",))
    assert text is not None and body is not None
    lines = text.get_content().splitlines()
    assert "  - brightness: mean 0.55 -> 0.35 (-2.1 sd); ks, statistic 0.412, p-value 1.2e-09" in (
        lines
    )
    assert "  - camera: flowcam-3 0% -> 48% (new); chi2, statistic 18.5, p-value 0.002" in lines
    assert "  - area: wasserstein, statistic 0.087, p-value 0.00034" in lines
    page = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body.get_content())).split())
    assert "brightness mean 0.55 -> 0.35 (-2.1 sd) ks" in page
    assert "camera flowcam-3 0% -> 48% (new) chi2" in page
    # the effect survives the outbox's JSON
    assert Notification.from_json(notice.to_json()).drifted[1].effect == camera
