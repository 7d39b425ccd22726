"""The per-channel epilogue of a convolution: bias and a clipping activation in one pass, in place."""
from numba import njit, prange

from ._common import FASTMATH, U, clip, compile_both, parallel_kernel


@njit(inline="always", fastmath=FASTMATH)
def _bias_clip_planes(y, bias, lo, hi, p0, p1):
    C, P = y.shape[1], y.shape[2]
    for nc in range(p0, p1):
        n = nc // C
        c = nc - n * C
        b = bias[c]
        row = y[n, c]
        for i in range(P):
            row[U(i)] = clip(row[U(i)] + b, lo, hi)


@parallel_kernel(fastmath=FASTMATH)
def bias_clip(y, bias, lo, hi):
    """y[n, c, :] = min(max(y[n, c, :] + bias[c], lo), hi) in place, for y of shape (N, C, P).

    ``lo = -inf, hi = inf`` adds the bias only; relu is (0, inf), relu6 (0, 6).
    """
    NC = y.shape[0] * y.shape[1]
    nchunks = min(NC, 64)
    for chunk in prange(nchunks):
        _bias_clip_planes(y, bias, lo, hi, chunk * NC // nchunks, (chunk + 1) * NC // nchunks)


@njit(inline="always", fastmath=FASTMATH)
def _clip_grad_range(g, y, lo, hi, out, i0, i1):
    for i in range(i0, i1):
        v = y[U(i)]
        out[U(i)] = g[U(i)] if (v > lo) & (v < hi) else 0.0


@parallel_kernel(fastmath=FASTMATH)
def clip_grad(g, y, lo, hi, out):
    """out = g where lo < y < hi, else 0: the gradient through a clip, given its output y (flat)."""
    n = g.shape[0]
    for chunk in prange(64):
        _clip_grad_range(g, y, lo, hi, out, chunk * n // 64, (chunk + 1) * n // 64)


def warm(dtype) -> None:
    import numpy as np
    y = np.zeros((1, 1, 2), dtype)
    compile_both(bias_clip, y, np.zeros(1, dtype), dtype(0), dtype(6))
    compile_both(clip_grad, y.ravel(), y.ravel(), dtype(0), dtype(6), np.empty(2, dtype))
