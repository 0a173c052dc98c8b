"""``tidewatch demo``: the whole loop on embedded defaults (:mod:`.run`), on synthetic data
(:mod:`.data`)."""
