"""``cupy.random`` of the stand-in: NumPy's generator, results on the device.

The streams differ from CuPy's (as CuPy's differ from NumPy's); only the API and the
float32/float64 restriction of CuPy's floating-point samplers are kept.
"""
from __future__ import annotations

import numpy as np

from cupy._array import ndarray

_rng = np.random.default_rng()


def _float(dtype):
    dtype = np.dtype(dtype)
    if dtype.char not in "fd":
        raise TypeError(f"cupy.random only supports float32 and float64, got {dtype}")
    return dtype


def _device(a, dtype=None) -> ndarray:
    a = np.asarray(a)
    return ndarray._wrap(a if dtype is None else a.astype(dtype, copy=False))


def seed(seed=None) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def random_sample(size=None, dtype=float) -> ndarray:
    return _device(_rng.random(size, _float(dtype)))


random = random_sample


def rand(*size, dtype=float) -> ndarray:
    return random_sample(size, dtype)


def standard_normal(size=None, dtype=float) -> ndarray:
    return _device(_rng.standard_normal(size, _float(dtype)))


def randn(*size, dtype=float) -> ndarray:
    return standard_normal(size, dtype)


def uniform(low=0.0, high=1.0, size=None, dtype=float) -> ndarray:
    return _device(_rng.uniform(low, high, size), _float(dtype))


def normal(loc=0.0, scale=1.0, size=None, dtype=float) -> ndarray:
    return _device(_rng.normal(loc, scale, size), _float(dtype))


def randint(low, high=None, size=None, dtype="l") -> ndarray:
    return _device(_rng.integers(low, high, size, dtype))


class Generator:
    """``cupy.random.default_rng()``'s generator."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64) -> ndarray:
        return _device(self._rng.random(size, _float(dtype)))

    def standard_normal(self, size=None, dtype=np.float64) -> ndarray:
        return _device(self._rng.standard_normal(size, _float(dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64) -> ndarray:
        return _device(self._rng.uniform(low, high, size), _float(dtype))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=np.float64) -> ndarray:
        return _device(self._rng.normal(loc, scale, size), _float(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint: bool = False) -> ndarray:
        return _device(self._rng.integers(low, high, size, dtype, endpoint))


def default_rng(seed=None) -> Generator:
    return Generator(seed)
