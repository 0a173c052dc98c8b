"""Parameters as configuration (river's and scikit-learn's habit).

Every detector takes keyword-only constructor parameters and stores each under its own name;
what ``fit`` learns is kept apart, in attributes with a trailing underscore (``features_``) or
private ones. So ``get_params()`` is the configuration, ``type(d)(**d.get_params())`` rebuilds
it, and ``repr`` shows it.

>>> from detectors import KSTest
>>> KSTest(alpha=0.01, device="cpu")
KSTest(device='cpu', alpha=0.01, correction='bh', mode='auto')
>>> KSTest(**KSTest(alpha=0.01, device="cpu").get_params()).alpha
0.01
"""

from __future__ import annotations

import inspect
from typing import Any


class Params:
    """``get_params()`` and a readable ``repr`` from the keyword-only constructor parameters."""

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        signature = inspect.signature(cls.__init__)
        return tuple(
            name
            for name, p in signature.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        )

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as stored: ``type(d)(**d.get_params())`` rebuilds ``d``."""
        return {name: getattr(self, name) for name in self.param_names()}

    def min_reference_rows(self) -> int:
        """Complete reference rows ``fit`` needs (a reference upload below it is refused)."""
        return 1

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({shown})"


def _show(value: Any) -> str:
    # a torch.device prints as device(type='cpu'); its string rebuilds it as well
    if type(value).__name__ == "device":
        return repr(str(value))
    return repr(value)
