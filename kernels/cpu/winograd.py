"""Winograd F(4x4, 3x3) convolution: 3x3 stride-1 kernels with four times fewer multiplications.

Lavin & Gray (2016), "Fast Algorithms for Convolutional Neural Networks". A 6x6 input tile ``d``
and a 3x3 filter ``g`` give a 4x4 output tile

    Y = AT [ (G g G^T) * (BT d BT^T) ] AT^T          (* elementwise)

so per tile and (output, input) channel pair 36 multiplications replace 144. Summed over the
input channels, the elementwise products become 36 independent GEMMs,
``M[ab] = V[ab] @ U[ab]`` with V = (36, T, C_in) transformed tiles and U = (36, C_in, C_out)
transformed filters. The matrices come from the Toom-Cook construction on the points
0, 1, -1, 1/2, -2 and infinity (``tests/test_winograd.py`` rebuilds them in exact rational
arithmetic): on float32 data the result differs from an exact convolution by about 2e-6 of its
largest value (F(2x2, 3x3) and direct summation: 3e-7; the points +-2, +-1/2 instead: 7e-6).

The transforms run on vectors of channels (``make_tile_transforms``), so every buffer keeps
its channels innermost: a task (a run of tile rows, across images) transposes each tile row's
six input rows to (column, channel), transforms its tiles into V (36, T, C), multiplies
M[ab] = V[ab] @ U[ab] (T x C_out: ``microgemm``, on one thread) and transforms M back into
(row, column, channel) order, transposed into y's planes. The transposes run on W x W blocks in
registers, element by element at the edges. The filters are transformed by vectors of output
channels too, into U (36, C_in, C_out).
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from . import microgemm
from ._vector_ir import VectorIR, float_arrays

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


# --- the tile transforms, as vector code over channels ----------------------------------------
# One call transforms W lanes (channels) at once: its 36 (or 9) vectors are loaded, combined
# with the constant matrices and stored. Written with Numba loops, the 36 loads and 36 stores
# through runtime strides stay scalar (``_vector_ir``).


def make_tile_transforms(vector_bytes: int = microgemm.VECTOR_BYTES):
    """``(input_tile, output_tile, weight_tile, transpose_block)`` on vectors of ``vector_bytes``,
    as Numba intrinsics. With v(p) the W-lane vector at p (W = vector_bytes / itemsize):

    - ``input_tile(src, s_off, s_row, s_col, dst, d_off, d_stride)``: with d[k][j] =
      v(src[s_off + k*s_row + j*s_col]), v(dst[d_off + (a*6 + b)*d_stride]) = (BT d BT^T)[a][b];
    - ``output_tile(src, s_off, s_stride, dst, d_off, d_row, d_col, bias, b_off, lo, hi)``: with
      m[a][b] = v(src[s_off + (a*6 + b)*s_stride]), v(dst[d_off + i*d_row + j*d_col]) =
      clip((AT m AT^T)[i][j] + v(bias[b_off]), lo, hi) (NaN stays NaN, as in ``_common.clip``);
    - ``weight_tile(src, s_off, s_stride, dst, d_off, d_stride)``: with g[k][j] =
      v(src[s_off + (k*3 + j)*s_stride]), v(dst[d_off + (a*6 + b)*d_stride]) = (G g G^T)[a][b];
    - ``transpose_block(src, s_off, s_row, dst, d_off, d_row)``: dst[d_off + j*d_row + r] =
      src[s_off + r*s_row + j] for r, j < W.

    The arrays are flat (``microgemm.flat``) and of one dtype; every vector is W whole lanes and
    nothing is bounds-checked: the caller pads its buffers to whole vectors.
    """
    def emitter(context, builder, sig, args):
        return VectorIR(context, builder, sig, args, sig.args[0].dtype, vector_bytes)

    @intrinsic
    def input_tile(typingctx, src, s_off, s_row, s_col, dst, d_off, d_stride):
        if not float_arrays(src, dst):
            return None

        def codegen(context, builder, sig, args):
            e = emitter(context, builder, sig, args)
            S, D, s_off_, s_row_, s_col_, d_off_, d_stride_ = (
                e.data(0), e.data(4), e.int64(1), e.int64(2), e.int64(3), e.int64(5), e.int64(6))
            d = [[e.load(S, e.offset(s_off_, (k, s_row_), (j, s_col_))) for j in range(ALPHA)] for k in range(ALPHA)]
            for ab, v in enumerate(sum(e.sandwich(BT.tolist(), d), [])):
                e.store(v, D, e.offset(d_off_, (ab, d_stride_)))
            return context.get_dummy_value()
        return types.void(src, s_off, s_row, s_col, dst, d_off, d_stride), codegen

    @intrinsic
    def output_tile(typingctx, src, s_off, s_stride, dst, d_off, d_row, d_col, bias, b_off, lo, hi):
        if not float_arrays(src, dst, bias):
            return None

        def codegen(context, builder, sig, args):
            e = emitter(context, builder, sig, args)
            S, D, s_off_, s_stride_, d_off_, d_row_, d_col_ = (
                e.data(0), e.data(3), e.int64(1), e.int64(2), e.int64(4), e.int64(5), e.int64(6))
            m = [[e.load(S, e.offset(s_off_, (a * ALPHA + b, s_stride_))) for b in range(ALPHA)] for a in range(ALPHA)]
            out = e.sandwich(AT.tolist(), m)
            bias_v = e.load(e.data(7), e.int64(8))
            lo_v, hi_v = (e.splat(e.value(i, src.dtype)) for i in (9, 10))
            for i in range(M):
                for j in range(M):
                    v = builder.fadd(out[i][j], bias_v)
                    v = builder.select(builder.fcmp_ordered("<", v, lo_v), lo_v, v)
                    v = builder.select(builder.fcmp_ordered(">", v, hi_v), hi_v, v)
                    e.store(v, D, e.offset(d_off_, (i, d_row_), (j, d_col_)))
            return context.get_dummy_value()
        return types.void(src, s_off, s_stride, dst, d_off, d_row, d_col, bias, b_off, lo, hi), codegen

    def vectors_in_vectors_out(count, transform):
        """An intrinsic ``(src, s_off, s_stride, dst, d_off, d_stride)`` that loads ``count(e)``
        vectors at src[s_off + r*s_stride], maps them by ``transform(e, vectors)`` and stores
        the results at dst[d_off + q*d_stride]."""
        @intrinsic
        def kernel(typingctx, src, s_off, s_stride, dst, d_off, d_stride):
            if not float_arrays(src, dst):
                return None

            def codegen(context, builder, sig, args):
                e = emitter(context, builder, sig, args)
                S, D, s_off_, s_stride_, d_off_, d_stride_ = (
                    e.data(0), e.data(3), e.int64(1), e.int64(2), e.int64(4), e.int64(5))
                vectors = [e.load(S, e.offset(s_off_, (r, s_stride_))) for r in range(count(e))]
                for q, v in enumerate(transform(e, vectors)):
                    e.store(v, D, e.offset(d_off_, (q, d_stride_)))
                return context.get_dummy_value()
            return types.void(src, s_off, s_stride, dst, d_off, d_stride), codegen
        return kernel

    # g[k][j] is vector k*3 + j; (G g G^T)[a][b] is stored as vector a*6 + b
    weight_tile = vectors_in_vectors_out(
        lambda e: 9, lambda e, g: sum(e.sandwich(G.tolist(), [g[0:3], g[3:6], g[6:9]]), []))
    transpose_block = vectors_in_vectors_out(lambda e: e.W, lambda e, rows: e.transpose(rows))

    return input_tile, output_tile, weight_tile, transpose_block


input_tile, output_tile, weight_tile, transpose_block = make_tile_transforms()
LANE_BYTES = microgemm.VECTOR_BYTES


@njit(parallel=True, cache=True)
def transform_weights(w, u, transposed):
    """u[a*6 + b, c, o] = (G f[o, c] G^T)[a, b] for the 3x3 filters f = w (C_out, C_in, 3, 3), or
    with ``transposed`` f[o, c] = w[c, o] flipped (the input gradient's filters); u is
    (36, C, Cop), Cop the output channels padded to whole vectors (the padding lanes are zero).
    """
    C, Co = (w.shape[0], w.shape[1]) if transposed else (w.shape[1], w.shape[0])
    Cop = u.shape[2]
    L = LANE_BYTES // w.itemsize
    for c in prange(C):
        wt = np.zeros(9 * Cop, w.dtype)             # wt[k*3 + j, o] = f[o, c, k, j]
        for o in range(Co):
            for k in range(3):
                for j in range(3):
                    wt[(k * 3 + j) * Cop + o] = w[c, o, 2 - k, 2 - j] if transposed else w[o, c, k, j]
        fu = microgemm.flat(u[:, c], u.size - c * Cop)
        for o0 in range(0, Cop, L):
            weight_tile(wt, o0, Cop, fu, o0, C * Cop)


@njit(inline="always")
def _fill_rows(x, n, y0, pw, xt, k0):
    """xt[k, xx, c] = x[n, c, y0 + k, xx - pw] (zero outside x) for the rows k0..5 of a tile row.

    Blocks of L channels x L columns are transposed in registers, the rest element by element.
    Columns outside x and lanes past C are never written: the caller allocates xt zeroed.
    """
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp, Cp = xt.shape[1], xt.shape[2]
    L = LANE_BYTES // x.itemsize
    s0, s1 = max(0, -pw), min(W, Wp - pw)              # the source columns that land in xt
    fx, fxt = microgemm.flat(x, x.size), microgemm.flat(xt, xt.size)
    for k in range(k0, ALPHA):
        yi = y0 + k
        if yi < 0 or yi >= H:
            xt[k, s0 + pw:s1 + pw, :C] = 0.0
            continue
        c_full = C // L * L
        s_full = s0 + (s1 - s0) // L * L
        for c0 in range(0, c_full, L):
            src = ((n * C + c0) * H + yi) * W
            for xs in range(s0, s_full, L):
                transpose_block(fx, src + xs, H * W, fxt, (k * Wp + xs + pw) * Cp + c0, Cp)
        for c in range(C):
            row = x[n, c, yi]
            dst = xt[k, :, c]
            for xs in range(s_full if c < c_full else s0, s1):
                dst[xs + pw] = row[xs]


@njit(inline="always")
def _copy_out(ob, y, n, yo):
    """y[n, o, yo + i, :] = ob[i, :Wo, o] for the output rows of a tile row (cut at the bottom)."""
    Co, Ho, Wo = y.shape[1], y.shape[2], y.shape[3]
    Wq, Cop = ob.shape[1], ob.shape[2]
    L = LANE_BYTES // y.itemsize
    fob, fy = microgemm.flat(ob, ob.size), microgemm.flat(y, y.size)
    o_full, x_full = Co // L * L, Wo // L * L
    for i in range(min(M, Ho - yo)):
        for o0 in range(0, o_full, L):
            for x0 in range(0, x_full, L):
                transpose_block(fob, (i * Wq + x0) * Cop + o0, Cop, fy, ((n * Co + o0) * Ho + yo + i) * Wo + x0, Ho * Wo)
        for o in range(Co):
            dst = y[n, o, yo + i]
            src = ob[i, :, o]
            for xx in range(x_full if o < o_full else 0, Wo):
                dst[xx] = src[xx]


@njit(parallel=True, cache=True)
def conv_forward(x, u, y, bias, lo, hi, band, nchunks, ph, pw):
    """y = clip(x (*) w + bias, lo, hi) for a 3x3 stride-1 kernel, u = transform_weights(w) (36, C_in, Cop).

    ``ph``/``pw``: the low padding (the high side follows from y's size); ``band``: tile rows
    per task (tasks run over all images' tile rows, in ``nchunks`` contiguous chunks).

    Layouts (channels innermost, padded to whole vectors: Cp, Cop): a tile row's six input
    rows xt (6, Wp, Cp); transformed tiles v (36, T, Cp); products m (36, T, Cop) = v @ u; a
    tile row's output ob (4, ntx*4, Cop), copied into y's planes.
    """
    N, C = x.shape[0], x.shape[1]
    Co, Ho, Wo = y.shape[1], y.shape[2], y.shape[3]
    L = LANE_BYTES // x.itemsize
    Cp, Cop = (C + L - 1) // L * L, (Co + L - 1) // L * L
    nty = (Ho + M - 1) // M
    ntx = (Wo + M - 1) // M
    Wp = ntx * M + 2
    total = N * nty
    ntasks = (total + band - 1) // band
    for chunk in prange(nchunks):
        vbuf = np.empty(ALPHA * ALPHA * band * ntx * Cp, x.dtype)
        mbuf = np.zeros(ALPHA * ALPHA * band * ntx * Cop, x.dtype)        # lanes past Co stay 0
        xt = np.zeros((ALPHA, Wp, Cp), x.dtype)
        ob = np.empty((M, ntx * M, Cop), x.dtype)
        bp = np.zeros(Cop, x.dtype)
        bp[:Co] = bias
        fxt, fob = microgemm.flat(xt, xt.size), microgemm.flat(ob, ob.size)
        for task in range(chunk * ntasks // nchunks, (chunk + 1) * ntasks // nchunks):
            r0 = task * band
            r1 = min(total, r0 + band)
            T = (r1 - r0) * ntx
            v = vbuf[:ALPHA * ALPHA * T * Cp]
            m = mbuf[:ALPHA * ALPHA * T * Cop]
            for r in range(r0, r1):
                n, ty = r // nty, r % nty
                if r > r0 and ty > 0:            # rows 4, 5 of the tile row above are rows 0, 1 of this one
                    xt[:2] = xt[M:]
                    _fill_rows(x, n, ty * M - ph, pw, xt, 2)
                else:
                    _fill_rows(x, n, ty * M - ph, pw, xt, 0)
                for tx in range(ntx):
                    t = (r - r0) * ntx + tx
                    for c0 in range(0, Cp, L):
                        input_tile(fxt, tx * M * Cp + c0, Wp * Cp, Cp, v, t * Cp + c0, T * Cp)
            for ab in range(ALPHA * ALPHA):
                microgemm.gemm(False, T, Co, C, v[ab * T * Cp:], Cp, u[ab], Cop, m[ab * T * Cop:], Cop, 0.0)
            for r in range(r0, r1):
                n, ty = r // nty, r % nty
                for tx in range(ntx):
                    t = (r - r0) * ntx + tx
                    for o0 in range(0, Cop, L):
                        output_tile(m, t * Cop + o0, T * Cop, fob, tx * M * Cop + o0, ntx * M * Cop, Cop, bp, o0, lo, hi)
                _copy_out(ob, y, n, ty * M)


def warm(dtype) -> None:
    x = np.zeros((1, 1, 5, 5), dtype)
    w = np.zeros((1, 1, 3, 3), dtype)
    u = np.empty((ALPHA * ALPHA, 1, LANE_BYTES // np.dtype(dtype).itemsize), dtype)
    transform_weights(w, u, False)
    conv_forward(x, u, np.empty((1, 1, 5, 5), dtype), np.zeros(1, dtype), dtype(-np.inf), dtype(np.inf), 1, 1, 1, 1)
