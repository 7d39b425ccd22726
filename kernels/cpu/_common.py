"""Small helpers shared by the CPU kernels."""
import numpy as np
from numba import njit

# Reductions may be reassociated (so they vectorize) and multiply-adds fused, but NaN/Inf
# semantics are kept: no 'fast' flag set, so a NaN in the input still shows up in the output.
FASTMATH = {"reassoc", "contract"}

#: Index cast for innermost loops: an unsigned index has no negative-index wraparound branch in
#: Numba, and without that branch LLVM vectorizes the loop (with it, it stays scalar).
U = np.uintp


@njit(inline="always", cache=True)
def valid_range(lo, hi, offset, step, size):
    """Output indices o in [lo, hi) with 0 <= o*step + offset < size, as (first, stop).

    -(offset // step) is ceil(-offset / step) under floor division, which Numba keeps.
    """
    first = max(lo, -(offset // step))
    stop = min(hi, (size - 1 - offset) // step + 1)
    return first, max(first, stop)


@njit(inline="always")
def clip(v, lo, hi):
    """min(max(v, lo), hi) written as comparisons, so that a NaN stays NaN (as with ``np.clip``).

    The convolution epilogue: lo = -inf, hi = inf adds the bias only; relu is (0, inf), relu6 (0, 6).
    """
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v
