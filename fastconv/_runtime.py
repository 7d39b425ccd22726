"""Process-wide settings that must be made before Numba runs its first parallel kernel.

Numba's OpenMP layer keeps its threads spinning after a parallel loop, which starves the
OpenBLAS threads of the GEMM that follows (im2col then matmul); the ``workqueue`` layer parks
its threads instead. A user's own NUMBA_THREADING_LAYER wins. If Numba's threads were already
started with another layer before fastconv was imported (``numba.set_num_threads`` or any
parallel Numba function), the layer cannot change any more: fastconv says so once, with the fix.
"""
import os
import warnings

if "NUMBA_THREADING_LAYER" not in os.environ:
    import numba

    try:
        _started = numba.threading_layer()      # raises ValueError until Numba starts its threads
    except ValueError:
        numba.config.THREADING_LAYER = "workqueue"
    else:
        if _started != "workqueue":
            warnings.warn(
                f"Numba's threads were started with the {_started!r} threading layer before fastconv "
                f"was imported; threads that spin after a parallel loop slow fastconv's BLAS calls (with "
                f"'omp', EfficientNet-Lite0 ran 3-6x slower). Import fastconv before calling numba.set_num_threads or any "
                f"parallel Numba function, or set NUMBA_THREADING_LAYER=workqueue.",
                RuntimeWarning, stacklevel=2)
