"""Winograd F(4x4, 3x3) convolution: 3x3 stride-1 kernels with four times fewer multiplications.

Lavin & Gray (2016), "Fast Algorithms for Convolutional Neural Networks". A 6x6 input tile ``d``
and a 3x3 filter ``g`` give a 4x4 output tile

    Y = AT [ (G g G^T) * (BT d BT^T) ] AT^T          (* elementwise)

so per tile and (output, input) channel pair 36 multiplications replace 144. Summed over the
input channels, the elementwise products become 36 independent GEMMs,
``M[ab] = U[ab] @ V[ab]`` with U = (36, C_out, C_in) transformed filters and V = (36, C_in, T)
transformed tiles. The matrices come from the Toom-Cook construction on the points
0, 1, -1, 1/2, -2 and infinity (``tests/test_winograd.py`` rebuilds them in exact rational
arithmetic): on float32 data the result differs from an exact convolution by about 2e-6 of its
largest value (F(2x2, 3x3) and direct summation: 3e-7; the points +-2, +-1/2 instead: 7e-6).

Each thread takes a run of tile rows (across images), transforms them into an L2-sized V,
multiplies with a single-threaded GEMM (``microgemm``) and transforms back straight into the output. The
transforms below are written out (they are constants): the loops over tiles then vectorize.
"""
import numpy as np
from numba import njit, prange

from . import microgemm
from ._common import FASTMATH, U, clip

#: Output tile (M) and input tile (ALPHA = M + 3 - 1) edge.
M = 4
ALPHA = 6

#: The transforms, V = BT d BT^T, U = G g G^T, Y = AT m AT^T (points 0, 1, -1, 1/2, -2, inf).
BT = np.array([[1.0, -1.5, -2.0, 1.5, 1.0, 0.0],
               [0.0, -1.0, 0.5, 2.5, 1.0, 0.0],
               [0.0, 1.0, -2.5, 0.5, 1.0, 0.0],
               [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
               [0.0, 0.5, -1.0, -0.5, 1.0, 0.0],
               [0.0, 1.0, -1.5, -2.0, 1.5, 1.0]])
G = np.array([[1.0, 0.0, 0.0],
              [1 / 3, 1 / 3, 1 / 3],
              [-1 / 3, 1 / 3, -1 / 3],
              [-16 / 15, -8 / 15, -4 / 15],
              [1 / 15, -2 / 15, 4 / 15],
              [0.0, 0.0, 1.0]])
AT = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
               [0.0, 1.0, -1.0, 0.5, -2.0, 0.0],
               [0.0, 1.0, 1.0, 0.25, 4.0, 0.0],
               [0.0, 1.0, -1.0, 0.125, -8.0, 1.0]])


# float32 constants (exact in float32): a float64 literal would promote float32 arithmetic
_1H, _2, _2H, _H, _Q, _E, _4, _8 = (np.float32(c) for c in (1.5, 2.0, 2.5, 0.5, 0.25, 0.125, 4.0, 8.0))


@njit(inline="always", fastmath=FASTMATH)
def _bt(d0, d1, d2, d3, d4, d5):
    """BT @ (d0..d5)."""
    return (d0 - _1H * d1 - _2 * d2 + _1H * d3 + d4,
            -d1 + _H * d2 + _2H * d3 + d4,
            d1 - _2H * d2 + _H * d3 + d4,
            -_2 * d1 - d2 + _2 * d3 + d4,
            _H * d1 - d2 - _H * d3 + d4,
            d1 - _1H * d2 - _2 * d3 + _1H * d4 + d5)


@njit(inline="always", fastmath=FASTMATH)
def _at(m0, m1, m2, m3, m4, m5):
    """AT @ (m0..m5)."""
    s12, d12 = m1 + m2, m1 - m2
    return (m0 + s12 + m3 + m4,
            d12 + _H * m3 - _2 * m4,
            s12 + _Q * m3 + _4 * m4,
            d12 + _E * m3 - _8 * m4 + m5)


@njit(inline="always")
def _put6(a, r, j, i, t):
    """a[r + k, j, i] = t[k] for the six values of a transformed column (k = 0..5)."""
    a[r, j, i] = t[0]
    a[r + 1, j, i] = t[1]
    a[r + 2, j, i] = t[2]
    a[r + 3, j, i] = t[3]
    a[r + 4, j, i] = t[4]
    a[r + 5, j, i] = t[5]


@njit(inline="always", fastmath=FASTMATH)
def _g(g0, g1, g2):
    """G @ (g0, g1, g2), in float64 (the weights are transformed once per call)."""
    return (g0,
            (g0 + g1 + g2) * (1 / 3),
            (g1 - g0 - g2) * (1 / 3),
            (16 * g0 + 8 * g1 + 4 * g2) * (-1 / 15),
            (g0 - 2 * g1 + 4 * g2) * (1 / 15),
            g2)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def transform_weights(w, u):
    """u[a*6 + b, o, c] = (G w[o, c] G^T)[a, b] for 3x3 filters w (C_out, C_in, 3, 3).

    One row a of the 6x6 tile at a time, with the input channels innermost: six contiguous
    store streams (36 at once, 4 KiB-aliased, thrashed the caches: 14 ms -> 1 ms on a3).
    """
    Co, C = w.shape[0], w.shape[1]
    for o in prange(Co):
        for a in range(ALPHA):
            ga0, ga1, ga2 = G[a, 0], G[a, 1], G[a, 2]
            k = a * ALPHA
            for c in range(C):
                i = U(c)
                p = ga0 * w[o, i, 0, 0] + ga1 * w[o, i, 1, 0] + ga2 * w[o, i, 2, 0]
                q = ga0 * w[o, i, 0, 1] + ga1 * w[o, i, 1, 1] + ga2 * w[o, i, 2, 1]
                r = ga0 * w[o, i, 0, 2] + ga1 * w[o, i, 1, 2] + ga2 * w[o, i, 2, 2]
                _put6(u, k, o, i, _g(p, q, r))


@njit(inline="always", fastmath=FASTMATH)
def _input_tiles(x, v, n, c, ty, t0, ntx, ph, pw, rows, tmp):
    """v[:, c, t0 + tx] = BT d BT^T for the tiles of tile row ty (image n, channel c).

    ``rows`` (6, ntx*4 + 2) receives the zero-padded input rows, ``tmp`` (6, same) their
    vertical transform; the horizontal transform then reads tile columns at stride 4.
    """
    H, W = x.shape[2], x.shape[3]
    Wp = rows.shape[1]
    y0 = ty * M - ph
    for k in range(ALPHA):
        r = rows[k]
        yi = y0 + k
        if yi < 0 or yi >= H:
            r[:] = 0.0
            continue
        lo = max(0, pw)
        hi = min(Wp, W + pw)
        for xx in range(lo):
            r[xx] = 0.0
        src = x[n, c, yi]
        for xx in range(lo, hi):
            r[U(xx)] = src[U(xx - pw)]
        for xx in range(hi, Wp):
            r[xx] = 0.0
    for xx in range(Wp):
        i = U(xx)
        t0_, t1, t2, t3, t4, t5 = _bt(rows[0, i], rows[1, i], rows[2, i], rows[3, i], rows[4, i], rows[5, i])
        tmp[0, i] = t0_
        tmp[1, i] = t1
        tmp[2, i] = t2
        tmp[3, i] = t3
        tmp[4, i] = t4
        tmp[5, i] = t5
    for a in range(ALPHA):
        s = tmp[a]
        for tx in range(ntx):
            q = U(tx * M)
            _put6(v, a * ALPHA, c, U(t0 + tx), _bt(s[q], s[q + 1], s[q + 2], s[q + 3], s[q + 4], s[q + 5]))


@njit(inline="always", fastmath=FASTMATH)
def _output_tiles(m, y, n, o, ty, t0, ntx, tmp, b, lo, hi):
    """y[n, o, 4ty:4ty+4, :] = clip(AT m AT^T + b, lo, hi) for the tiles of tile row ty (cut at the edges)."""
    Ho, Wo = y.shape[2], y.shape[3]
    for a in range(ALPHA):                       # tmp[a*4 + j, tx] = (m AT^T)[a, j]
        r = a * ALPHA
        for tx in range(ntx):
            t = U(t0 + tx)
            z0, z1, z2, z3 = _at(m[r, o, t], m[r + 1, o, t], m[r + 2, o, t],
                                 m[r + 3, o, t], m[r + 4, o, t], m[r + 5, o, t])
            q = a * M
            tmp[q, U(tx)] = z0
            tmp[q + 1, U(tx)] = z1
            tmp[q + 2, U(tx)] = z2
            tmp[q + 3, U(tx)] = z3
    full = min(ntx, Wo // M)
    for j in range(M):
        for tx in range(ntx):
            c0, c1, c2, c3 = _at(tmp[j, U(tx)], tmp[M + j, U(tx)], tmp[2 * M + j, U(tx)],
                                 tmp[3 * M + j, U(tx)], tmp[4 * M + j, U(tx)], tmp[5 * M + j, U(tx)])
            q = ALPHA * M + j
            tmp[q, U(tx)] = clip(c0 + b, lo, hi)
            tmp[q + M, U(tx)] = clip(c1 + b, lo, hi)
            tmp[q + 2 * M, U(tx)] = clip(c2 + b, lo, hi)
            tmp[q + 3 * M, U(tx)] = clip(c3 + b, lo, hi)
    for i in range(M):
        yo = ty * M + i
        if yo >= Ho:
            break
        dst = y[n, o, yo]
        src = tmp[(ALPHA + i) * M:(ALPHA + i + 1) * M]
        for tx in range(full):
            for j in range(M):
                dst[U(tx * M + j)] = src[j, U(tx)]
        for tx in range(full, ntx):
            for j in range(M):
                if tx * M + j < Wo:
                    dst[tx * M + j] = src[j, tx]


@njit(parallel=True, cache=True)
def conv_forward(x, u, y, bias, lo, hi, band, nchunks, ph, pw):
    """y = clip(x (*) w + bias, lo, hi) for a 3x3 stride-1 kernel, u = transform_weights(w) (36, C_out, C_in).

    ``ph``/``pw``: the low padding (the high side follows from y's size); ``band``: tile rows
    per task (tasks run over all images' tile rows, in ``nchunks`` contiguous chunks).
    """
    N, C = x.shape[0], x.shape[1]
    Co, Ho, Wo = y.shape[1], y.shape[2], y.shape[3]
    nty = (Ho + M - 1) // M
    ntx = (Wo + M - 1) // M
    Wp = ntx * M + 2
    total = N * nty
    ntasks = (total + band - 1) // band
    for chunk in prange(nchunks):
        vbuf = np.empty(ALPHA * ALPHA * C * band * ntx, x.dtype)
        mbuf = np.empty(ALPHA * ALPHA * Co * band * ntx, x.dtype)
        rows = np.empty((ALPHA, Wp), x.dtype)
        tmp = np.empty((ALPHA, Wp), x.dtype)
        otmp = np.empty(((ALPHA + M) * M, ntx), x.dtype)
        for task in range(chunk * ntasks // nchunks, (chunk + 1) * ntasks // nchunks):
            r0 = task * band
            r1 = min(total, r0 + band)
            T = (r1 - r0) * ntx
            v = vbuf[:ALPHA * ALPHA * C * T].reshape((ALPHA * ALPHA, C, T))
            m = mbuf[:ALPHA * ALPHA * Co * T].reshape((ALPHA * ALPHA, Co, T))
            for r in range(r0, r1):
                n, ty = r // nty, r % nty
                for c in range(C):
                    _input_tiles(x, v, n, c, ty, (r - r0) * ntx, ntx, ph, pw, rows, tmp)
            for ab in range(ALPHA * ALPHA):
                microgemm.gemm(False, Co, T, C, u[ab], C, v[ab], T, m[ab], T, 0.0)
            for r in range(r0, r1):
                n, ty = r // nty, r % nty
                for o in range(Co):
                    _output_tiles(m, y, n, o, ty, (r - r0) * ntx, ntx, otmp, bias[o], lo, hi)


def warm(dtype) -> None:
    x = np.zeros((1, 1, 5, 5), dtype)
    w = np.zeros((1, 1, 3, 3), dtype)
    u = np.empty((ALPHA * ALPHA, 1, 1), dtype)
    transform_weights(w, u)
    conv_forward(x, u, np.empty((1, 1, 5, 5), dtype), np.zeros(1, dtype), dtype(-np.inf), dtype(np.inf), 1, 1, 1, 1)
