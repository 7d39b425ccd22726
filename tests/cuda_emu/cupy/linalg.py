"""``cupy.linalg`` of the stand-in: NumPy's linalg functions on device arrays."""
from __future__ import annotations

import numpy as np

from cupy import _array


def __getattr__(name: str):
    f = getattr(np.linalg, name, None)
    if f is None or not callable(f) or isinstance(f, type):
        raise AttributeError(f"module 'cupy.linalg' has no attribute {name!r}")
    f = _array.function(f)
    globals()[name] = f
    return f
