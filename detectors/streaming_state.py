"""What a saved streaming detector state may contain when it is loaded (see detectors.streaming).

Pickle runs code when loaded: the unpickler here only resolves frouros's own classes,
Tidewatch's own streaming detector, and the numpy and builtin types their attributes hold.
Anything else (os.system, builtins.eval, ...) is refused, before import.
"""

from __future__ import annotations

import pickle
from typing import Any

ALLOWED_GLOBALS = {
    ("builtins", "float"),
    ("builtins", "int"),
    ("builtins", "bool"),
    ("collections", "deque"),
    ("detectors.streaming_glr", "CusumGLR"),
    ("detectors.streaming_glr", "GLRConfig"),
    *(
        (module, name)
        for module in ("numpy", "numpy._core.multiarray", "numpy._core.numeric")
        for name in ("_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer")
    ),
}


class Refused(pickle.UnpicklingError):
    """A state pickle named something outside the allowed globals."""


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        # From frouros only classes frouros defines, and no dotted names: those would reach
        # through a module attribute (frouros modules import os and multiprocessing)
        if module.startswith("frouros.") and "." not in name:
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__.startswith("frouros."):
                return found
        raise Refused(f"{module}.{name} is not allowed in a detector state")
