"""GEMM on strided row-major panels, called from Numba kernels through SciPy's BLAS.

``np.dot`` in Numba needs contiguous operands; calling ``?gemm`` directly (the same library
Numba's ``np.dot`` uses, SciPy's ``cython_blas``) lets a kernel multiply a block of columns of
an image in place and write straight into the output, with leading dimensions for the strides.
The caller keeps BLAS single-threaded while its own threads run (``single_threaded_blas``).
"""
import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

# Registered as named symbols (not ctypes pointers), so the kernels that call them can be cached:
# the address is resolved each time a process loads the cached machine code.
_SIG = types.void(*([types.voidptr] * 13))
llvm.add_symbol("fastconv_sgemm", get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
llvm.add_symbol("fastconv_dgemm", get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
_sgemm = types.ExternalFunction("fastconv_sgemm", _SIG)
_dgemm = types.ExternalFunction("fastconv_dgemm", _SIG)


@njit(inline="always")
def gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, beta):
    """c[:m, :n] = op(a) @ op(b) + beta * c for row-major panels given by their first element.

    ``a``, ``b``, ``c`` are arrays (any shape, any view) whose first element starts the panel
    and whose rows are ``lda``, ``ldb``, ``ldc`` elements apart; op(a) is a (m x k; stored k x m
    when ``trans_a``), op(b) is (k x n; stored n x k when ``trans_b``). Column-major BLAS
    computes the transposed product c^T = op(b)^T op(a)^T, which is the same memory.
    """
    dims = np.empty(6, np.int32)
    dims[0], dims[1], dims[2], dims[3], dims[4], dims[5] = n, m, k, ldb, lda, ldc
    flags = np.empty(2, np.uint8)
    flags[0] = 84 if trans_b else 78                # 'T' / 'N'
    flags[1] = 84 if trans_a else 78
    scal = np.empty(2, c.dtype)
    scal[0], scal[1] = 1.0, beta
    args = (flags[0:].ctypes, flags[1:].ctypes, dims[0:].ctypes, dims[1:].ctypes, dims[2:].ctypes,
            scal.ctypes, b.ctypes, dims[3:].ctypes, a.ctypes, dims[4:].ctypes, scal[1:].ctypes, c.ctypes,
            dims[5:].ctypes)
    if c.itemsize == 4:
        _sgemm(*args)
    else:
        _dgemm(*args)
