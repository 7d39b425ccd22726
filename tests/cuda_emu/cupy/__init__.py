"""A NumPy-backed stand-in for CuPy: fastconv's CUDA backend and its GPU tests, run on a CPU.

Put ``tests/cuda_emu`` first on ``sys.path`` (``PYTHONPATH=tests/cuda_emu``) and ``import cupy``
gives this package. ``fastconv.backends.cuda`` then loads unchanged: its ``RawModule`` kernels
(``kernels/cuda/*.cu``) are compiled for the host by :mod:`cupy._raw` and run on the memory of
these arrays, and everything else it does with CuPy (``matmul(out=...)``, ``clip``, ``where``,
views, reductions) is NumPy on that same memory.

The point is to fail where a GPU fails, not only to compute: a device array is a wrapper
(:class:`ndarray`, not a ``numpy.ndarray``) holding its memory in ``_host``, and CuPy's
host/device rules are enforced with CuPy's exceptions. ``numpy.asarray(device_array)`` is a
TypeError (use ``.get()``); a NumPy array as an operand of an operator, ufunc or array
function is a TypeError ("Unsupported type <class 'numpy.ndarray'>"); only Python and NumPy
scalars mix with device arrays. Host data crosses over through :func:`asarray`, :func:`array`
(always copies), :func:`asnumpy` and ``ndarray.get()/set()`` only, and the few arguments
CuPy copies itself (index arrays, split points, pad widths). Uninitialized memory
(:func:`empty`, :func:`empty_like`) is filled with 0xFF bytes (NaN, -1) so that an element a
kernel forgets to write shows.

The namespace is NumPy's: ``cupy.<name>`` is NumPy's function of that name on device arrays
(results wrapped, reductions as 0-d arrays, ``out=`` writing the device array), NumPy's ufunc
as :class:`ufunc` (with CuPy's ``.at``), or NumPy's dtype or constant itself; plus
:mod:`cupy.cuda`, :mod:`cupy.random`, :mod:`cupy.linalg`, ``get_array_module`` and
``get_default_memory_pool``.
"""
from __future__ import annotations

import types as _types

import numpy as _np

from cupy import cuda, linalg, random  # noqa: F401  (the submodules)
from cupy._array import function as _function, garbage as _garbage, ndarray, ufunc, unwrap as _unwrap

__version__ = "0.0-emulated"

_UNSUPPORTED_KINDS = "OSUVMm"  # object, strings, void, datetimes: no CuPy dtype


# ----------------------------------------------------------------------------- host <-> device
def _to_device(obj, dtype, order) -> ndarray:
    host = _np.array(_unwrap(obj, allow_host=True), dtype=dtype, order=order, copy=True)
    if host.dtype.kind in _UNSUPPORTED_KINDS:
        raise ValueError(f"Unsupported dtype {host.dtype}")
    return ndarray._wrap(host)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin: int = 0) -> ndarray:
    """A device array from host data (always a copy) or from a device array (a copy unless ``copy`` is false)."""
    if isinstance(obj, ndarray):
        a = obj.astype(obj.dtype if dtype is None else dtype, order=order, copy=bool(copy))
    else:
        a = _to_device(obj, dtype, order)
    return a.reshape((1,) * (ndmin - a.ndim) + a.shape) if a.ndim < ndmin else a


def asarray(a, dtype=None, order=None, *, copy=None) -> ndarray:
    """``a`` as a device array: a device array of the dtype is returned as is; host data is copied
    over (a device transfer never aliases host memory)."""
    if isinstance(a, ndarray):
        return a.astype(a.dtype if dtype is None else dtype, order=order or "K", copy=bool(copy))
    return _to_device(a, dtype, order or "K")


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None) -> _np.ndarray:
    """A NumPy copy of a device array; anything else through ``numpy.asarray``."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    return _np.asarray(a, order=order)


def ascontiguousarray(a: ndarray, dtype=None) -> ndarray:
    """``a`` itself when C-contiguous (and of ``dtype``), else a C-contiguous copy; device arrays only."""
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(a).__name__})")
    if a.ndim == 0:
        return a.ravel().astype(dtype or a.dtype, copy=False)
    if (dtype is None or _np.dtype(dtype) == a.dtype) and a.flags.c_contiguous:
        return a
    return ndarray._wrap(_np.ascontiguousarray(a._host, dtype))


def empty(shape, dtype=float, order="C") -> ndarray:
    """Uninitialized device memory (0xFF bytes here: NaN for floats)."""
    return ndarray(shape, dtype, order=order)


def empty_like(prototype: ndarray, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    """Uninitialized device memory shaped like the device array ``prototype``."""
    host = _unwrap(prototype)
    return ndarray._wrap(_garbage(_np.empty_like(host, dtype, order, shape=shape)))


def get_array_module(*args):
    """This module if any argument is a device array, else NumPy."""
    import cupy
    return cupy if any(isinstance(a, ndarray) for a in args) else _np


_memory_pool = cuda.MemoryPool()


def get_default_memory_pool() -> cuda.MemoryPool:
    return _memory_pool


# ----------------------------------------------------------------------------- the rest of NumPy
_MISSING = object()


def __getattr__(name: str):
    """NumPy's ``name`` on device arrays (see the module docstring); RawModule/RawKernel from _raw."""
    if name in ("RawModule", "RawKernel"):
        from cupy import _raw
        return getattr(_raw, name)
    obj = getattr(_np, name, _MISSING)
    if obj is _MISSING or isinstance(obj, _types.ModuleType) or name.startswith("_"):
        raise AttributeError(f"module 'cupy' (the CPU stand-in) has no attribute {name!r}")
    if isinstance(obj, _np.ufunc):
        obj = ufunc(obj)
    elif callable(obj) and not isinstance(obj, type):
        obj = _function(obj)
    globals()[name] = obj
    return obj

