"""Backend dispatch by array type: NumPy arrays run on the CPU, CuPy arrays on CUDA.

CuPy is imported only when a CuPy array is seen (or CUDA is asked for by name), so fastconv
imports and runs on machines without a GPU.
"""
from __future__ import annotations

import importlib
import sys


def is_cupy_array(a) -> bool:
    """True when ``a`` is a CuPy array (checked without importing CuPy)."""
    return "cupy" in sys.modules and type(a).__module__.startswith("cupy")


def get_backend(array=None, device: str | None = None):
    """The backend module for ``array`` (or for ``device``: 'cpu' or 'cuda')."""
    if device is None:
        device = "cuda" if (array is not None and is_cupy_array(array)) else "cpu"
    if device == "cpu":
        from fastconv.backends import cpu
        return cpu
    if device == "cuda":
        try:
            return importlib.import_module("fastconv.backends.cuda")
        except ImportError as exc:  # CuPy missing or no CUDA driver
            raise RuntimeError(f"the CUDA backend is unavailable: {exc}. Install the 'gpu' extra "
                               f"(pip install 'fastconv[gpu]') on a machine with an NVIDIA GPU.") from exc
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def get_xp(array):
    """The array module (numpy or cupy) that ``array`` belongs to."""
    if is_cupy_array(array):
        import cupy
        return cupy
    import numpy
    return numpy


def to_device(array, device: str):
    """``array`` on ``device`` ('cpu' -> NumPy, 'cuda' -> CuPy); unchanged if it is already there."""
    if device == "cpu":
        return array.get() if is_cupy_array(array) else array
    if device == "cuda":
        xp = get_backend(device="cuda").xp
        return array if is_cupy_array(array) else xp.asarray(array)
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def to_numpy(array):
    """``array`` as a NumPy array (for pictures and files): CuPy arrays are copied off the GPU.

    Example:
        >>> import numpy as np
        >>> a = np.ones(2)
        >>> to_numpy(a) is a
        True
    """
    if is_cupy_array(array):
        return array.get()
    import numpy
    return numpy.asarray(array)


def _is_device(arg) -> bool:
    return isinstance(arg, str) and arg in ("cpu", "cuda")
