"""im2col / col2im: unfold input patches into a column matrix for a GEMM, and fold back.

The column matrix of images n0..n0+B and output rows y0..y1 has shape
``(B, C*KH*KW, (y1-y0)*Wo)``; row ``r = (c*KH + i)*KW + j`` holds tap (i, j) of channel c for
every output pixel of the tile. With that order, the rows of one group are contiguous, so a
grouped convolution is one batched matmul ``w (G, Og, Cg*KH*KW) @ cols (B, G, Cg*KH*KW, P)``.
Padding is written as zeros; no padded input copy is made.
"""
import numpy as np
from numba import njit, prange

from ._common import U, compile_both, parallel_kernel, valid_range


@njit(inline="always")
def fill_row(x, row, n, c, i, j, y0, y1, sh, sw, dh, dw, ph, pw, Wo):
    """One column row: tap (i, j) of channel c of image n for output rows y0..y1 (zeros in the padding)."""
    H, W = x.shape[2], x.shape[3]
    off = j * dw - pw
    xa, xb = valid_range(0, Wo, off, sw, W)
    for yo in range(y0, y1):
        p0 = (yo - y0) * Wo
        yi = yo * sh + i * dh - ph
        if yi < 0 or yi >= H:
            for t in range(Wo):
                row[U(p0 + t)] = 0.0
            continue
        for t in range(xa):
            row[U(p0 + t)] = 0.0
        if sw == 1:
            for t in range(xa, xb):
                row[U(p0 + t)] = x[n, c, yi, U(t + off)]
        else:
            for t in range(xa, xb):
                row[U(p0 + t)] = x[n, c, yi, U(t * sw + off)]
        for t in range(xb, Wo):
            row[U(p0 + t)] = 0.0


@njit(inline="always")
def fold_row(row, dx, n, c, i, j, y0, y1, sh, sw, dh, dw, ph, pw, Wo):
    """Add one column row back into dx[n, c] (the adjoint of ``fill_row``)."""
    H, W = dx.shape[2], dx.shape[3]
    off = j * dw - pw
    xa, xb = valid_range(0, Wo, off, sw, W)
    for yo in range(y0, y1):
        yi = yo * sh + i * dh - ph
        if yi < 0 or yi >= H:
            continue
        p0 = (yo - y0) * Wo
        if sw == 1:
            for t in range(xa, xb):
                dx[n, c, yi, U(t + off)] += row[U(p0 + t)]
        else:
            for t in range(xa, xb):
                dx[n, c, yi, U(t * sw + off)] += row[U(p0 + t)]


@njit(inline="always")
def fold_row_pair(row_a, row_b, dx, n, c, i, j, y0, y1, sh, dh, ph, pw, Wo):
    """Fold taps (i, j) and (i, j+1) together at stride 2 and dilation 1 (width axis).

    Pixel t of the two rows lands in columns 2t + off and 2t + off + 1 of one input row:
    adjacent, so one loop stores both and LLVM vectorizes it as an interleaved pair, where
    ``fold_row``'s stride-2 stores stay scalar (e's fold: 1.5x, a 7x7 stride-2 fold: 1.8x
    faster). Tap j+1's valid pixels [xa1, xb1) start and stop no later than tap j's
    [xa0, xb0), so the row splits into: j+1 alone, both, j alone.
    """
    H, W = dx.shape[2], dx.shape[3]
    off = j - pw
    xa0, xb0 = valid_range(0, Wo, off, 2, W)
    xa1, xb1 = valid_range(0, Wo, off + 1, 2, W)
    for yo in range(y0, y1):
        yi = yo * sh + i * dh - ph
        if yi < 0 or yi >= H:
            continue
        p0 = (yo - y0) * Wo
        dst = dx[n, c, yi]
        for t in range(xa1, min(xa0, xb1)):
            dst[U(2 * t + off + 1)] += row_b[U(p0 + t)]
        for t in range(xa0, xb1):
            dst[U(2 * t + off)] += row_a[U(p0 + t)]
            dst[U(2 * t + off + 1)] += row_b[U(p0 + t)]
        for t in range(max(xa0, xb1), xb0):
            dst[U(2 * t + off)] += row_a[U(p0 + t)]


@njit(inline="always")
def fold_taps(cols, r, dx, n, c, i, KW, y0, y1, sh, sw, dh, dw, ph, pw, Wo):
    """Fold the KW column rows r.. (taps (i, 0..KW-1) of channel c) into dx[n, c]: in pairs at
    stride 2 and dilation 1 (``fold_row_pair``), one by one otherwise."""
    j = 0
    while j < KW:
        if sw == 2 and dw == 1 and j + 1 < KW:
            fold_row_pair(cols[r + j], cols[r + j + 1], dx, n, c, i, j, y0, y1, sh, dh, ph, pw, Wo)
            j += 2
        else:
            fold_row(cols[r + j], dx, n, c, i, j, y0, y1, sh, sw, dh, dw, ph, pw, Wo)
            j += 1


@njit(parallel=True, cache=True)
def im2col(x, cols, n0, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo):
    """Fill ``cols[b, (c, i, j), (y - y0) * Wo + x]`` from ``x[n0 + b]``; one task per column row."""
    C = x.shape[1]
    B = cols.shape[0]
    R = C * KH * KW
    for task in prange(B * R):
        b = task // R
        r = task % R
        fill_row(x, cols[b, r], n0 + b, r // (KH * KW), (r // KW) % KH, r % KW, y0, y1,
                 sh, sw, dh, dw, ph, pw, Wo)


@parallel_kernel()
def col2im(cols, dx, n0, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo):
    """Add ``cols[b, (c, i, j), p]`` back into ``dx[n0 + b, c]`` (the adjoint of im2col).

    One task per (image, channel) plane: the KH*KW rows of a channel all land in its own plane,
    so tasks never add into the same element. The caller zeroes ``dx`` first.
    """
    C = dx.shape[1]
    B = cols.shape[0]
    for task in prange(B * C):
        b = task // C
        c = task % C
        for i in range(KH):
            fold_taps(cols[b], (c * KH + i) * KW, dx, n0 + b, c, i, KW, y0, y1, sh, sw, dh, dw, ph, pw, Wo)


def warm(dtype) -> None:
    """Compile (or load from cache) every kernel of this module for ``dtype``."""
    x = np.ones((1, 2, 3, 3), dtype)
    cols = np.empty((1, 8, 4), dtype)
    im2col(x, cols, 0, 0, 2, 2, 2, 1, 1, 1, 1, 0, 0, 2)
    compile_both(col2im, cols, x, 0, 0, 2, 2, 2, 1, 1, 1, 1, 0, 0, 2)
