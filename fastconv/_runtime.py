"""Process-wide settings that must be made before Numba runs its first parallel kernel.

Numba's OpenMP layer keeps its threads spinning after a parallel loop, which starves the
OpenBLAS threads of the GEMM that follows (im2col then matmul); the ``workqueue`` layer parks
its threads instead. A user's own NUMBA_THREADING_LAYER wins.
"""
import os

if "NUMBA_THREADING_LAYER" not in os.environ:
    import numba

    numba.config.THREADING_LAYER = "workqueue"
