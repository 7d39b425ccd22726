"""Small helpers shared by the CPU kernels."""
import types

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


#: Below this many multiply-adds (about 100 us of work on one core) a kernel runs on the calling
#: thread: waking the workqueue layer's threads for a parallel region costs 25-31 us here, and
#: splitting a small image among threads makes thin GEMM tiles (bench/NOTES.md). Measured in one
#: process, serial and parallel calls alternating (3x3 and 5x5, batch 1, 14-28 px): serial was
#: 1.1-1.6x faster at 0.9-1.8 M multiply-adds in 17 of 18 forward and gradient cases, about even
#: at 5-7 M, and slower at 29 M.
SERIAL_MACS = 1 << 21

_serial_twins = {}


def parallel_kernel(**options):
    """``njit(parallel=True, cache=True, **options)``, plus a serial twin for small problems.

    The twin is the same Python function compiled without ``parallel`` (``prange`` is then
    ``range``) under its own name, so Numba caches the two apart. :func:`for_work` picks one.
    """
    def decorate(fn):
        kernel = njit(parallel=True, cache=True, **options)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__, twin.__doc__ = fn.__module__, fn.__doc__
        _serial_twins[kernel] = njit(cache=True, **options)(twin)
        return kernel
    return decorate


def compile_both(kernel, *args) -> None:
    """Call ``kernel`` and its serial twin on ``args`` (a module's ``warm``: compile or load both)."""
    kernel(*args)
    _serial_twins[kernel](*args)


def serial_if(kernel, small: bool):
    """``kernel``'s serial twin when ``small``, else ``kernel``."""
    return _serial_twins[kernel] if small else kernel


def runs_serially(macs: int) -> bool:
    """Whether a convolution of ``macs`` multiply-adds runs its kernels' serial twins."""
    return macs < SERIAL_MACS


def for_work(kernel, macs: int):
    """``kernel``, or its serial twin when ``macs`` multiply-adds are too few to share out."""
    return serial_if(kernel, runs_serially(macs))
