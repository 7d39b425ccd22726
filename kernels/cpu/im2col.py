"""im2col / col2im: unfold input patches into a column matrix for a BLAS GEMM, and fold back.

The column matrix of images n0..n0+B and output rows y0..y1 has shape
``(B, C*KH*KW, (y1-y0)*Wo)``; row ``r = (c*KH + i)*KW + j`` holds tap (i, j) of channel c for
every output pixel of the tile. With that order, the rows of one group are contiguous, so a
grouped convolution is one batched matmul ``w (G, Og, Cg*KH*KW) @ cols (B, G, Cg*KH*KW, P)``.
Padding is written as zeros; no padded input copy is made.
"""
import numpy as np
from numba import njit, prange

from ._common import valid_range


@njit(parallel=True, cache=True)
def im2col(x, cols, n0, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo):
    """Fill ``cols[b, (c, i, j), (y - y0) * Wo + x]`` from ``x[n0 + b]``."""
    _, C, H, W = x.shape
    B = cols.shape[0]
    R = C * KH * KW
    for task in prange(B * R):
        b = task // R
        r = task % R
        c = r // (KH * KW)
        i = (r // KW) % KH
        j = r % KW
        off = j * dw - pw
        xa, xb = valid_range(0, Wo, off, sw, W)
        row = cols[b, r]
        for yo in range(y0, y1):
            dst = row[(yo - y0) * Wo: (yo - y0 + 1) * Wo]
            yi = yo * sh + i * dh - ph
            if yi < 0 or yi >= H:
                for t in range(Wo):
                    dst[t] = 0.0
                continue
            irow = x[n0 + b, c, yi]
            for t in range(xa):
                dst[t] = 0.0
            if sw == 1:
                src = irow[xa + off: xb + off]
                for t in range(xb - xa):
                    dst[xa + t] = src[t]
            else:
                for t in range(xa, xb):
                    dst[t] = irow[t * sw + off]
            for t in range(xb, Wo):
                dst[t] = 0.0


@njit(parallel=True, cache=True)
def col2im(cols, dx, n0, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo):
    """Add ``cols[b, (c, i, j), p]`` back into ``dx[n0 + b, c]`` (the adjoint of im2col).

    One task per (image, channel) plane: the KH*KW rows of a channel all land in its own plane,
    so tasks never add into the same element. The caller zeroes ``dx`` first.
    """
    _, C, H, W = dx.shape
    B = cols.shape[0]
    for task in prange(B * C):
        b = task // C
        c = task % C
        for i in range(KH):
            for j in range(KW):
                row = cols[b, (c * KH + i) * KW + j]
                off = j * dw - pw
                xa, xb = valid_range(0, Wo, off, sw, W)
                for yo in range(y0, y1):
                    yi = yo * sh + i * dh - ph
                    if yi < 0 or yi >= H:
                        continue
                    src = row[(yo - y0) * Wo: (yo - y0 + 1) * Wo]
                    drow = dx[n0 + b, c, yi]
                    if sw == 1:
                        dst = drow[xa + off: xb + off]
                        for t in range(xb - xa):
                            dst[t] += src[xa + t]
                    else:
                        for t in range(xa, xb):
                            drow[t * sw + off] += src[t]


def warm(dtype) -> None:
    """Compile (or load from cache) every kernel of this module for ``dtype``."""
    x = np.ones((1, 2, 3, 3), dtype)
    cols = np.empty((1, 8, 4), dtype)
    im2col(x, cols, 0, 0, 2, 2, 2, 1, 1, 1, 1, 0, 0, 2)
    col2im(cols, x, 0, 0, 2, 2, 2, 1, 1, 1, 1, 0, 0, 2)
