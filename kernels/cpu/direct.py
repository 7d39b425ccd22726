"""Direct convolution kernels (NCHW, any stride, dilation, padding, groups).

Padding is implicit: for each tap (i, j) the range of output pixels that read inside the input
is computed once (``valid_range``), so no padded copy of the input is ever made and no index
is ever negative. Innermost indices are cast to unsigned (``U``): Numba then drops its
negative-index wraparound branch, which alone decides whether LLVM vectorizes the loop
(slicing a row view per output row also works, but costs a view construction per row).

A 1-D convolution arrives as a 2-D one with height 1; to keep both cores busy on a single long
signal the output width is split into tiles of ``xtile`` pixels, each an independent task.
"""
import numpy as np
from numba import prange

from ._common import FASTMATH, U, compile_both, parallel_kernel, valid_range


@parallel_kernel(fastmath=FASTMATH)
def conv_forward(x, w, out, sh, sw, dh, dw, ph, pw, groups, xtile):
    """out[n, o] = sum_{c in group(o), i, j} w[o, c', i, j] * x_pad[n, c, y*sh + i*dh, x*sw + j*dw]."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    Og = O // groups
    ntx = (Wo + xtile - 1) // xtile
    for task in prange(N * O * ntx):
        tx = task % ntx
        o = (task // ntx) % O
        n = task // (ntx * O)
        c0 = (o // Og) * Cg
        x0 = tx * xtile
        x1 = min(Wo, x0 + xtile)
        for yo in range(Ho):
            for xo in range(x0, x1):
                out[n, o, yo, xo] = 0.0
        for cg in range(Cg):
            c = c0 + cg
            for i in range(KH):
                ya, yb = valid_range(0, Ho, i * dh - ph, sh, H)
                for j in range(KW):
                    off = j * dw - pw
                    xa, xb = valid_range(x0, x1, off, sw, W)
                    wv = w[o, cg, i, j]
                    for yo in range(ya, yb):
                        yi = yo * sh + i * dh - ph
                        if sw == 1:
                            for xo in range(xa, xb):
                                out[n, o, yo, U(xo)] += wv * x[n, c, yi, U(xo + off)]
                        else:
                            for xo in range(xa, xb):
                                out[n, o, yo, U(xo)] += wv * x[n, c, yi, U(xo * sw + off)]


@parallel_kernel(fastmath=FASTMATH)
def conv_grad_input(dy, w, dx, sh, sw, dh, dw, ph, pw, groups):
    """dx = C^T dy: scatter each output pixel back through every tap (the transposed conv).

    Each task owns one input plane dx[n, c], so no two iterations ever add to one element.
    """
    N, C, H, W = dx.shape
    O, Cg, KH, KW = w.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    Og = O // groups
    for task in prange(N * C):
        n = task // C
        c = task % C
        g = c // Cg
        cg = c % Cg
        for yi in range(H):
            for xi in range(W):
                dx[n, c, yi, xi] = 0.0
        for o in range(g * Og, (g + 1) * Og):
            for i in range(KH):
                ya, yb = valid_range(0, Ho, i * dh - ph, sh, H)
                for j in range(KW):
                    off = j * dw - pw
                    xa, xb = valid_range(0, Wo, off, sw, W)
                    wv = w[o, cg, i, j]
                    for yo in range(ya, yb):
                        yi = yo * sh + i * dh - ph
                        if sw == 1:
                            for xo in range(xa, xb):
                                dx[n, c, yi, U(xo + off)] += wv * dy[n, o, yo, U(xo)]
                        else:
                            for xo in range(xa, xb):
                                dx[n, c, yi, U(xo * sw + off)] += wv * dy[n, o, yo, U(xo)]


@parallel_kernel(fastmath=FASTMATH)
def conv_grad_weight(x, dy, dwt, sh, sw, dh, dw, ph, pw, groups):
    """dwt[o, c', i, j] = sum_{n, y, x} dy[n, o, y, x] * x_pad[n, c, y*sh + i*dh, x*sw + j*dw].

    One task per (o, c') pair; the per-row dot products are reduced in registers.
    """
    N, C, H, W = x.shape
    O, Cg, KH, KW = dwt.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    Og = O // groups
    for task in prange(O * Cg):
        o = task // Cg
        cg = task % Cg
        c = (o // Og) * Cg + cg
        for i in range(KH):
            ya, yb = valid_range(0, Ho, i * dh - ph, sh, H)
            for j in range(KW):
                off = j * dw - pw
                xa, xb = valid_range(0, Wo, off, sw, W)
                acc = 0.0
                for n in range(N):
                    for yo in range(ya, yb):
                        yi = yo * sh + i * dh - ph
                        part = 0.0
                        if sw == 1:
                            for xo in range(xa, xb):
                                part += dy[n, o, yo, U(xo)] * x[n, c, yi, U(xo + off)]
                        else:
                            for xo in range(xa, xb):
                                part += dy[n, o, yo, U(xo)] * x[n, c, yi, U(xo * sw + off)]
                        acc += part
                dwt[o, cg, i, j] = acc


def warm(dtype) -> None:
    """Compile (or load from cache) every kernel of this module for ``dtype``."""
    x = np.ones((1, 2, 3, 3), dtype)
    w = np.ones((2, 1, 2, 2), dtype)
    y = np.empty((1, 2, 2, 2), dtype)
    compile_both(conv_forward, x, w, y, 1, 1, 1, 1, 0, 0, 2, 64)
    compile_both(conv_grad_input, y, w, x, 1, 1, 1, 1, 0, 0, 2)
    compile_both(conv_grad_weight, x, y, w, 1, 1, 1, 1, 0, 0, 2)
