"""Depthwise convolution (groups == C_in, any channel multiplier, stride, dilation, padding).

One task per input plane. The plane is copied once into ``sh * sw`` zero-padded *phase
planes*, ``P[p, q][a, b] = x_pad[a*sh + p, b*sw + q]``, each ``A`` rows by ``B`` columns. In
phase coordinates a strided, dilated tap (i, j) becomes a plain shift: output (y, x) reads
``P[(i*dh) % sh, (j*dw) % sw][y + (i*dh)//sh, x + (j*dw)//sw]``. Computing the output on a grid
of width ``B`` (the extra ``B - Wo`` columns are thrown away) turns each tap into ONE
contiguous loop over ``Ho * B`` elements of the flattened planes: a few long vectorized loops
per plane instead of one short loop per (row, tap), which is what small planes
(7x7 .. 28x28, the late layers of MobileNets) need.

The input gradient runs the same loops in reverse (scatter into the phase planes, then fold
them back into the plane); the weight gradient is a dot product per (output channel, tap).
"""
import numpy as np
from numba import njit, prange

from ._common import FASTMATH, U, clip, compile_both, parallel_kernel, valid_range


@njit(inline="always")
def _phase_dims(Ho, Wo, KH, KW, sh, sw, dh, dw):
    A = Ho + ((KH - 1) * dh) // sh + 1     # one spare zero row: the last taps read past row A-1
    B = Wo + ((KW - 1) * dw) // sw
    return A, B


@njit(inline="always")
def _tap(i, j, dh, dw, sh, sw, B):
    """(phase plane, flat shift) that tap (i, j) reads for output 0."""
    return ((i * dh) % sh) * sw + (j * dw) % sw, ((i * dh) // sh) * B + (j * dw) // sw


@njit(inline="always")
def _to_grid(dy, n, o, g, B):
    """dy[n, o] laid out on the width-B output grid (the extra columns stay as they are: zero)."""
    Ho, Wo = dy.shape[2], dy.shape[3]
    for y in range(Ho):
        for t in range(Wo):
            g[U(y * B + t)] = dy[n, o, y, U(t)]


@njit(inline="always")
def _gather(x, n, c, P, sh, sw, ph, pw):
    """P[p*sw + q, a, b] = x[n, c, a*sh + p - ph, b*sw + q - pw] (zero outside the plane)."""
    H, W = x.shape[2], x.shape[3]
    _, A, B = P.shape
    for p in range(sh):
        for q in range(sw):
            k = p * sw + q
            # columns b whose input column b*sw + q - pw lies inside [0, W)
            b0, b1 = valid_range(0, B, q - pw, sw, W)
            for a in range(A):
                yi = a * sh + p - ph
                if yi < 0 or yi >= H:
                    for b in range(B):
                        P[k, a, U(b)] = 0.0
                    continue
                for b in range(b0):
                    P[k, a, U(b)] = 0.0
                if sw == 1:
                    for b in range(b0, b1):
                        P[k, a, U(b)] = x[n, c, yi, U(b + q - pw)]
                else:
                    for b in range(b0, b1):
                        P[k, a, U(b)] = x[n, c, yi, U(b * sw + q - pw)]
                for b in range(b1, B):
                    P[k, a, U(b)] = 0.0


@njit(inline="always", fastmath=FASTMATH)
def _taps_plane(Pf, w, o, acc, KH, KW, dh, dw, sh, sw, B, L):
    """acc[:L] = sum over taps of w[o, 0, i, j] * (phase plane of the tap, shifted): whole-grid loops."""
    for t in range(L):
        acc[U(t)] = 0.0
    for i in range(KH):
        # taps three at a time: one load and store of acc per three multiply-adds
        j = 0
        while j + 3 <= KW:
            k0, s0 = _tap(i, j, dh, dw, sh, sw, B)
            k1, s1 = _tap(i, j + 1, dh, dw, sh, sw, B)
            k2, s2 = _tap(i, j + 2, dh, dw, sh, sw, B)
            w0, w1, w2 = w[o, 0, i, j], w[o, 0, i, j + 1], w[o, 0, i, j + 2]
            a0, a1, a2 = Pf[k0], Pf[k1], Pf[k2]
            for t in range(L):
                acc[U(t)] += w0 * a0[U(t + s0)] + w1 * a1[U(t + s1)] + w2 * a2[U(t + s2)]
            j += 3
        while j < KW:
            k0, s0 = _tap(i, j, dh, dw, sh, sw, B)
            w0 = w[o, 0, i, j]
            a0 = Pf[k0]
            for t in range(L):
                acc[U(t)] += w0 * a0[U(t + s0)]
            j += 1


@parallel_kernel(fastmath=FASTMATH)
def conv_forward(x, w, out, bias, lo, hi, nchunks, sh, sw, dh, dw, ph, pw):
    """out[n, c*M + m] = clip(sum_ij w[c*M + m, 0, i, j] * x_pad[n, c, y*sh + i*dh, x*sw + j*dw]
    + bias[c*M + m], lo, hi): the epilogue is applied as each plane is written.

    The planes are dealt out in ``nchunks`` contiguous runs, each with its buffers allocated once.
    """
    N, C = x.shape[0], x.shape[1]
    O, _, KH, KW = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    M = O // C
    A, B = _phase_dims(Ho, Wo, KH, KW, sh, sw, dh, dw)
    L = Ho * B
    for chunk in prange(nchunks):
        P = np.empty((sh * sw, A, B), x.dtype)
        Pf = P.reshape(sh * sw, A * B)
        acc = np.empty(L, x.dtype)
        for task in range(chunk * N * C // nchunks, (chunk + 1) * N * C // nchunks):
            n = task // C
            c = task % C
            _gather(x, n, c, P, sh, sw, ph, pw)
            for m in range(M):
                o = c * M + m
                b = bias[o]
                _taps_plane(Pf, w, o, acc, KH, KW, dh, dw, sh, sw, B, L)
                for y in range(Ho):
                    for t in range(Wo):
                        out[n, o, y, U(t)] = clip(acc[U(y * B + t)] + b, lo, hi)


@njit(inline="always", fastmath=FASTMATH)
def _grad_input_plane(dy, w, dx, P, g, n, c, M, KH, KW, sh, sw, dh, dw, ph, pw, B, L):
    """dx[n, c] from the M output planes of input plane c (P and g are the task's buffers)."""
    H, W = dx.shape[2], dx.shape[3]
    A = P.shape[1] // B
    P[:, :] = 0.0
    for m in range(M):
        o = c * M + m
        _to_grid(dy, n, o, g, B)
        for i in range(KH):
            for j in range(KW):
                k, shift = _tap(i, j, dh, dw, sh, sw, B)
                wv = w[o, 0, i, j]
                dst = P[k]
                for t in range(L):
                    dst[U(t + shift)] += wv * g[U(t)]
    for yi in range(H):
        for xi in range(W):
            dx[n, c, yi, xi] = 0.0
    # fold: padded pixel (a*sh + p, b*sw + q) is input pixel (a*sh + p - ph, b*sw + q - pw)
    for p in range(sh):
        for q in range(sw):
            k = p * sw + q
            b0, b1 = valid_range(0, B, q - pw, sw, W)
            for a in range(A):
                yi = a * sh + p - ph
                if yi < 0 or yi >= H:
                    continue
                src = P[k, a * B:(a + 1) * B]
                if sw == 1:
                    for b in range(b0, b1):
                        dx[n, c, yi, U(b + q - pw)] += src[U(b)]
                else:
                    for b in range(b0, b1):
                        dx[n, c, yi, U(b * sw + q - pw)] += src[U(b)]


@parallel_kernel(fastmath=FASTMATH)
def conv_grad_input(dy, w, dx, nchunks, sh, sw, dh, dw, ph, pw):
    """dx = the adjoint of ``conv_forward``: spread dy through every tap, then fold the phases back."""
    N, C = dx.shape[0], dx.shape[1]
    O, _, KH, KW = w.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    M = O // C
    A, B = _phase_dims(Ho, Wo, KH, KW, sh, sw, dh, dw)
    L = Ho * B
    for chunk in prange(nchunks):
        P = np.empty((sh * sw, A * B), dy.dtype)
        g = np.zeros(L, dy.dtype)      # the grid's extra columns stay zero throughout
        for task in range(chunk * N * C // nchunks, (chunk + 1) * N * C // nchunks):
            _grad_input_plane(dy, w, dx, P, g, task // C, task % C, M, KH, KW, sh, sw, dh, dw, ph, pw, B, L)


@parallel_kernel(fastmath=FASTMATH)
def conv_grad_weight(x, dy, dwt, sh, sw, dh, dw, ph, pw):
    """dwt[c*M + m, 0, i, j] = sum_n <dy[n, c*M + m] on the width-B grid, shifted phase plane>."""
    N, C = x.shape[0], x.shape[1]
    O, _, KH, KW = dwt.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    M = O // C
    A, B = _phase_dims(Ho, Wo, KH, KW, sh, sw, dh, dw)
    L = Ho * B
    for c in prange(C):
        P = np.empty((sh * sw, A, B), x.dtype)
        g = np.zeros(L, x.dtype)
        acc = np.zeros((M, KH, KW))
        for n in range(N):
            _gather(x, n, c, P, sh, sw, ph, pw)
            Pf = P.reshape(sh * sw, A * B)
            for m in range(M):
                o = c * M + m
                _to_grid(dy, n, o, g, B)
                for i in range(KH):
                    for j in range(KW):
                        k, shift = _tap(i, j, dh, dw, sh, sw, B)
                        src = Pf[k]
                        s = 0.0
                        for t in range(L):
                            s += g[U(t)] * src[U(t + shift)]
                        acc[m, i, j] += s
        for m in range(M):
            for i in range(KH):
                for j in range(KW):
                    dwt[c * M + m, 0, i, j] = acc[m, i, j]


def warm(dtype) -> None:
    """Compile (or load from cache) every kernel of this module for ``dtype``."""
    x = np.ones((1, 2, 4, 4), dtype)
    w = np.ones((2, 1, 3, 3), dtype)
    y = np.empty((1, 2, 2, 2), dtype)
    compile_both(conv_forward, x, w, y, np.zeros(2, dtype), dtype(-np.inf), dtype(np.inf), 1, 2, 2, 1, 1, 1, 1)
    compile_both(conv_grad_input, y, w, x, 1, 2, 2, 1, 1, 1, 1)
    compile_both(conv_grad_weight, x, y, w, 2, 2, 1, 1, 1, 1)
