"""Tiled im2col + GEMM convolutions: each thread builds a cache-sized column tile and multiplies it.

Building the whole column matrix first and multiplying it afterwards streams K*K copies of the
input through main memory twice; here a tile of ``rows`` output rows is unfolded into a buffer
small enough to stay in the core's L2 cache and is consumed by a single-threaded GEMM
(fastconv's own, ``microgemm``) right away. Parallelism is over tiles: the tasks are split into
``nchunks`` contiguous chunks, one per thread, so every chunk allocates its buffers once.

Weights arrive grouped: ``wm`` is (G, Og, Kg) with Kg = Cg*KH*KW and rows ordered (c, i, j),
the order ``im2col.im2col`` writes.
"""
import numpy as np
from numba import njit, prange

from . import microgemm
from ._common import compile_both, parallel_kernel
from .im2col import fill_row, fold_taps


@njit(inline="always")
def _fill(x, cols, n, c0, Cg, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo):
    """cols[(c, i, j), p] for channels c0..c0+Cg of image n and output rows y0..y1."""
    r = 0
    for c in range(c0, c0 + Cg):
        for i in range(KH):
            for j in range(KW):
                fill_row(x, cols[r], n, c, i, j, y0, y1, sh, sw, dh, dw, ph, pw, Wo)
                r += 1


@njit(inline="always")
def _fold(cols, dx, n, c0, Cg, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo):
    """dx[n, c0 + c] += the columns of a tile (the adjoint of ``_fill``)."""
    for c in range(c0, c0 + Cg):
        for i in range(KH):
            fold_taps(cols, ((c - c0) * KH + i) * KW, dx, n, c, i, KW, y0, y1, sh, sw, dh, dw, ph, pw, Wo)


@njit(inline="always")
def _task_columns(x, colbuf, task, nty, G, Kg, rows, Ho, Wo, KH, KW, sh, sw, dh, dw, ph, pw):
    """Task -> (image n, group g, output rows y0..y1, its column tile filled in ``colbuf``).

    Tasks run over (image, group, tile of ``rows`` output rows), the row tiles innermost.
    """
    ty = task % nty
    g = (task // nty) % G
    n = task // (nty * G)
    y0 = ty * rows
    y1 = min(Ho, y0 + rows)
    P = (y1 - y0) * Wo
    cols = colbuf[:Kg * P].reshape((Kg, P))
    Cg = x.shape[1] // G
    _fill(x, cols, n, g * Cg, Cg, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo)
    return n, g, y0, y1, cols


@parallel_kernel()
def conv_forward(x, wm, y, bias, lo, hi, rows, nchunks, KH, KW, sh, sw, dh, dw, ph, pw):
    """y[n, g*Og:(g+1)*Og, tile] = clip(wm[g] @ columns(tile) + bias, lo, hi), tile by tile."""
    N = x.shape[0]
    G, Og, Kg = wm.shape
    Ho, Wo = y.shape[2], y.shape[3]
    nty = (Ho + rows - 1) // rows
    ntasks = N * G * nty
    for chunk in prange(nchunks):
        colbuf = np.empty(Kg * rows * Wo, x.dtype)
        for task in range(chunk * ntasks // nchunks, (chunk + 1) * ntasks // nchunks):
            n, g, y0, y1, cols = _task_columns(x, colbuf, task, nty, G, Kg, rows, Ho, Wo,
                                               KH, KW, sh, sw, dh, dw, ph, pw)
            P = cols.shape[1]
            # the tile's output rows are contiguous in every plane: write them in place, with
            # the epilogue applied block by block inside the GEMM
            microgemm.gemm_bias_clip(Og, P, Kg, wm[g], Kg, cols, P, y[n, g * Og:, y0:], Ho * Wo,
                                     bias[g * Og:], lo, hi)


@parallel_kernel()
def conv_grad_input(dy, wt, dx, rows, KH, KW, sh, sw, dh, dw, ph, pw):
    """dx[n, group g] = col2im(wt[g] @ dy tile) for every tile; one task per (image, group).

    Output-row tiles of one image fold into overlapping input rows, so the tiles of an
    (image, group) pair run in order inside one task and no two tasks touch the same element.
    ``wt`` is (G, Kg, Og), the per-group transposed weight, and ``dx`` is zeroed by the caller.
    """
    N, C = dx.shape[0], dx.shape[1]
    G, Kg, Og = wt.shape
    Cg = C // G
    Ho, Wo = dy.shape[2], dy.shape[3]
    for task in prange(N * G):
        g = task % G
        n = task // G
        colbuf = np.empty(Kg * rows * Wo, dy.dtype)
        for y0 in range(0, Ho, rows):
            y1 = min(Ho, y0 + rows)
            P = (y1 - y0) * Wo
            cols = colbuf[:Kg * P].reshape((Kg, P))
            microgemm.gemm(False, Kg, P, Og, wt[g], Og, dy[n, g * Og:, y0:], Ho * Wo, cols, P, 0.0)
            _fold(cols, dx, n, g * Cg, Cg, y0, y1, KH, KW, sh, sw, dh, dw, ph, pw, Wo)


@parallel_kernel()
def conv_grad_weight(x, dy, partial, rows, KH, KW, sh, sw, dh, dw, ph, pw):
    """partial[chunk, g] = sum over the chunk's tiles of columns(tile) @ dy_tile^T (Kg x Og).

    The weight gradient transposed, dw[g]^T = columns @ dy^T, so that the product's right
    operand is the small one: each tile's dy (Og x P) is copied transposed into a P x Og panel
    (1/Kg of the multiply-adds), and microgemm reads the columns in place. ``partial`` is
    (nchunks, G, Kg, Og), zeroed by the caller, who sums it over chunks and transposes it: each
    chunk owns its slice, so no two threads ever add into one element.
    """
    N = x.shape[0]
    nchunks, G, Kg, Og = partial.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    nty = (Ho + rows - 1) // rows
    ntasks = N * G * nty
    for chunk in prange(nchunks):
        colbuf = np.empty(Kg * rows * Wo, x.dtype)
        dyt = np.empty(rows * Wo * Og, x.dtype)
        for task in range(chunk * ntasks // nchunks, (chunk + 1) * ntasks // nchunks):
            n, g, y0, y1, cols = _task_columns(x, colbuf, task, nty, G, Kg, rows, Ho, Wo,
                                               KH, KW, sh, sw, dh, dw, ph, pw)
            P = cols.shape[1]
            for o in range(Og):
                src = dy[n, g * Og + o, y0:y1].reshape(P)
                for t in range(P):
                    dyt[t * Og + o] = src[t]
            microgemm.gemm(False, Kg, Og, P, cols, P, dyt, Og, partial[chunk, g], Og, 1.0)


#: Column granularity of ``matmul``'s tasks (a multiple of microgemm's panel width).
TASK_COLUMNS = 64


@parallel_kernel()
def matmul(a, b, nb0, jb0, c, nc0, jc0, B, P, tasks_per_plane):
    """c[nc0 + i, g, :, jc0:jc0 + P] = a[g] @ b[nb0 + i, g, :, jb0:jb0 + P] for i < B, every group g.

    ``a`` is (G, M, K), ``b`` (Nb, G, K, Pb) and ``c`` (Nc, G, M, Pc), whole arrays (so that
    every call has one signature), with the columns taken at an offset: the whole-image paths'
    product for a batch tile and a band of output rows, multi-threaded over runs of columns
    instead of handed to BLAS's threads. Each plane's 64-column panels are dealt out evenly to
    ``tasks_per_plane`` tasks (784 columns to 4 tasks: 192, 192, 192, 208).
    """
    G, M, K = a.shape
    npan = (P + TASK_COLUMNS - 1) // TASK_COLUMNS
    nt = min(tasks_per_plane, npan)
    for task in prange(B * G * nt):
        t = task % nt
        g = (task // nt) % G
        i = task // (nt * G)
        j0 = t * npan // nt * TASK_COLUMNS
        j1 = min(P, (t + 1) * npan // nt * TASK_COLUMNS)
        microgemm.gemm(False, M, j1 - j0, K, a[g], K, b[nb0 + i, g, :, jb0 + j0:], b.shape[3],
                       c[nc0 + i, g, :, jc0 + j0:], c.shape[3], 0.0)


def warm(dtype) -> None:
    """Compile (or load from cache) every kernel of this module for ``dtype``."""
    x = np.ones((1, 2, 3, 3), dtype)
    wm = np.ones((1, 2, 8), dtype)
    y = np.empty((1, 2, 2, 2), dtype)
    compile_both(conv_forward, x, wm, y, np.zeros(2, dtype), dtype(-np.inf), dtype(np.inf), 1, 1, 2, 2,
                 1, 1, 1, 1, 0, 0)
    compile_both(conv_grad_input, y, np.ascontiguousarray(wm.transpose(0, 2, 1)), np.zeros_like(x), 1, 2, 2,
                 1, 1, 1, 1, 0, 0)
    compile_both(conv_grad_weight, x, y, np.zeros((1, 1, 8, 2), dtype), 1, 2, 2, 1, 1, 1, 1, 0, 0)
    compile_both(matmul, wm, np.ones((1, 1, 8, 4), dtype), 0, 0, np.empty((1, 1, 2, 4), dtype), 0, 0, 1, 4, 2)
