"""``cupyx.scipy.sparse.csr_matrix`` of the CuPy stand-in: SciPy's CSR matrix "on the device".

As in CuPy, the matrix is built from a host (SciPy) matrix, multiplies device arrays only
(``M @ x`` and ``M.T @ x``, results on the device) and refuses NumPy operands.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as _sp

import cupy


class csr_matrix:  # noqa: N801  (CuPy's name)
    """A CSR matrix whose products take and return device arrays."""

    def __init__(self, m):
        if isinstance(m, csr_matrix):
            m = m._m
        if not _sp.issparse(m):
            raise TypeError(f"csr_matrix here is built from a SciPy sparse matrix, got {type(m).__name__}")
        self._m = _sp.csr_matrix(m)

    shape = property(lambda self: self._m.shape)
    dtype = property(lambda self: self._m.dtype)
    nnz = property(lambda self: self._m.nnz)

    @property
    def T(self) -> "csr_matrix":  # noqa: N802
        return csr_matrix(self._m.T)

    def __matmul__(self, other):
        if not isinstance(other, cupy.ndarray):
            raise TypeError(f"Unsupported type {type(other)}: a device sparse matrix multiplies device arrays")
        return cupy.asarray(np.asarray(self._m @ other.get()))

    def get(self):
        return self._m.copy()
