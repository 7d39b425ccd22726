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
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

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



# --- the tile transforms as vector code -------------------------------------------------------
# One call transforms W lanes of channels at once (W = microgemm.VECTOR_BYTES // itemsize): the
# 36 input vectors are loaded, combined with the constant matrices (zeros skipped, +-1 as an add
# or a subtract) and stored. Numba's loop vectorizer cannot do this: 36 loads and 36 stores
# through runtime strides need more alias checks than LLVM will emit, so the loop stays scalar.


def _combine(builder, fmuladd, row, vectors, vec):
    """sum_j row[j] * vectors[j] for a constant row."""
    acc = None
    for c, v in zip(row, vectors):
        if c == 0:
            continue
        if acc is None:
            acc = v if c == 1 else builder.fneg(v) if c == -1 else builder.fmul(ir.Constant(vec, [c] * vec.count), v)
        elif c == 1:
            acc = builder.fadd(acc, v)
        elif c == -1:
            acc = builder.fsub(acc, v)
        else:
            acc = builder.call(fmuladd, [ir.Constant(vec, [c] * vec.count), v, acc])
    return acc


def _sandwich(builder, fmuladd, left, grid, vec):
    """left @ grid @ left^T for a grid (list of rows) of vectors."""
    cols = list(zip(*grid))
    half = [[_combine(builder, fmuladd, row, col, vec) for col in cols] for row in left]     # left @ grid
    return [[_combine(builder, fmuladd, row, h, vec) for row in left] for h in half]         # (...) @ left^T


def _vector_tools(context, builder, dtype, vector_bytes):
    """The vector type of ``vector_bytes``, the fmuladd intrinsic on it, and load/store at a flat array's offset."""
    W = vector_bytes * 8 // dtype.bitwidth
    vec = ir.VectorType(context.get_value_type(dtype), W)
    fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             f"llvm.fmuladd.v{W}f{dtype.bitwidth}")
    align = dtype.bitwidth // 8

    def address(base, off):
        return builder.bitcast(builder.gep(base, [off]), vec.as_pointer())

    def load(base, off):
        return builder.load(address(base, off), align=align)

    def store(v, base, off):
        builder.store(v, address(base, off), align=align)
    return vec, fmuladd, load, store


def _int64s(context, builder, sig, args, positions):
    return [context.cast(builder, args[i], sig.args[i], types.int64) for i in positions]


def _flat_data(context, builder, ty, arg):
    return context.make_array(ty)(context, builder, arg).data


def make_tile_transforms(vector_bytes: int = microgemm.VECTOR_BYTES):
    """``input_tile`` and ``output_tile`` on vectors of ``vector_bytes``, as Numba intrinsics.

    ``input_tile(src, s_off, s_row, s_col, dst, d_off, d_stride)``: with d[k][j] the W-lane vector
    at src[s_off + k*s_row + j*s_col], stores (BT d BT^T)[a][b] at dst[d_off + (a*6 + b)*d_stride].

    ``output_tile(src, s_off, s_stride, dst, d_off, d_row, d_col, bias, b_off, lo, hi)``: with
    m[a][b] the vector at src[s_off + (a*6 + b)*s_stride], stores clip((AT m AT^T)[i][j] +
    bias[b_off:], lo, hi) at dst[d_off + i*d_row + j*d_col].

    The arrays are flat (``microgemm.flat``) and of one dtype; every vector is W whole lanes and
    nothing is bounds-checked: the caller pads its buffers to a multiple of W lanes.
    """
    def arrays_ok(*arrs):
        return (all(isinstance(a, types.Array) for a in arrs) and arrs[0].dtype in (types.float32, types.float64)
                and all(a.dtype == arrs[0].dtype for a in arrs))

    @intrinsic
    def input_tile(typingctx, src, s_off, s_row, s_col, dst, d_off, d_stride):
        if not arrays_ok(src, dst):
            return None

        def codegen(context, builder, sig, args):
            vec, fmuladd, load, store = _vector_tools(context, builder, src.dtype, vector_bytes)
            s_off_, s_row_, s_col_, d_off_, d_stride_ = _int64s(context, builder, sig, args, (1, 2, 3, 5, 6))
            S, D = _flat_data(context, builder, src, args[0]), _flat_data(context, builder, dst, args[4])
            i64 = ir.IntType(64)
            grid = [[load(S, builder.add(s_off_, builder.add(builder.mul(ir.Constant(i64, k), s_row_),
                                                              builder.mul(ir.Constant(i64, j), s_col_))))
                     for j in range(ALPHA)] for k in range(ALPHA)]
            out = _sandwich(builder, fmuladd, BT.tolist(), grid, vec)
            for a in range(ALPHA):
                for b in range(ALPHA):
                    store(out[a][b], D, builder.add(d_off_, builder.mul(ir.Constant(i64, a * ALPHA + b), d_stride_)))
            return context.get_dummy_value()
        return types.void(src, s_off, s_row, s_col, dst, d_off, d_stride), codegen

    @intrinsic
    def output_tile(typingctx, src, s_off, s_stride, dst, d_off, d_row, d_col, bias, b_off, lo, hi):
        if not arrays_ok(src, dst, bias):
            return None

        def codegen(context, builder, sig, args):
            vec, fmuladd, load, store = _vector_tools(context, builder, src.dtype, vector_bytes)
            s_off_, s_stride_, d_off_, d_row_, d_col_, b_off_ = _int64s(context, builder, sig, args, (1, 2, 4, 5, 6, 8))
            S, D = _flat_data(context, builder, src, args[0]), _flat_data(context, builder, dst, args[3])
            Bv = _flat_data(context, builder, bias, args[7])
            i64 = ir.IntType(64)
            lo_, hi_ = (context.cast(builder, args[i], sig.args[i], src.dtype) for i in (9, 10))
            grid = [[load(S, builder.add(s_off_, builder.mul(ir.Constant(i64, a * ALPHA + b), s_stride_)))
                     for b in range(ALPHA)] for a in range(ALPHA)]
            out = _sandwich(builder, fmuladd, AT.tolist(), grid, vec)
            b_v = load(Bv, b_off_)
            lo_v, hi_v = (_splat(builder, v, vec) for v in (lo_, hi_))
            for i in range(M):
                for j in range(M):
                    v = builder.fadd(out[i][j], b_v)
                    v = builder.select(builder.fcmp_ordered("<", v, lo_v), lo_v, v)     # NaN stays NaN
                    v = builder.select(builder.fcmp_ordered(">", v, hi_v), hi_v, v)
                    store(v, D, builder.add(d_off_, builder.add(builder.mul(ir.Constant(i64, i), d_row_),
                                                                builder.mul(ir.Constant(i64, j), d_col_))))
            return context.get_dummy_value()
        return types.void(src, s_off, s_stride, dst, d_off, d_row, d_col, bias, b_off, lo, hi), codegen

    @intrinsic
    def weight_tile(typingctx, src, s_off, s_stride, dst, d_off, d_stride):
        if not arrays_ok(src, dst):
            return None

        def codegen(context, builder, sig, args):
            vec, fmuladd, load, store = _vector_tools(context, builder, src.dtype, vector_bytes)
            s_off_, s_stride_, d_off_, d_stride_ = _int64s(context, builder, sig, args, (1, 2, 4, 5))
            S, D = _flat_data(context, builder, src, args[0]), _flat_data(context, builder, dst, args[3])
            i64 = ir.IntType(64)
            grid = [[load(S, builder.add(s_off_, builder.mul(ir.Constant(i64, k * 3 + j), s_stride_)))
                     for j in range(3)] for k in range(3)]
            out = _sandwich(builder, fmuladd, G.tolist(), grid, vec)
            for a in range(ALPHA):
                for b in range(ALPHA):
                    store(out[a][b], D, builder.add(d_off_, builder.mul(ir.Constant(i64, a * ALPHA + b), d_stride_)))
            return context.get_dummy_value()
        return types.void(src, s_off, s_stride, dst, d_off, d_stride), codegen

    return input_tile, output_tile, weight_tile


def _splat(builder, s, vec):
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), vec.count), [0] * vec.count))


input_tile, output_tile, weight_tile = make_tile_transforms()
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
def _fill_rows(x, n, y0, pw, xt):
    """xt[k, xx, c] = x[n, c, y0 + k, xx - pw] (zero outside x), for the six rows of a tile row.

    Columns outside x and lanes past C are never written: the caller allocates xt zeroed.
    """
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp = xt.shape[1]
    lo, hi = max(0, pw), min(Wp, W + pw)
    for k in range(ALPHA):
        yi = y0 + k
        if yi < 0 or yi >= H:
            xt[k, lo:hi, :C] = 0.0
            continue
        for c in range(C):
            src = x[n, c, yi]
            dst = xt[k, :, c]
            for xx in range(lo, hi):
                dst[xx] = src[xx - pw]


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
        fx, fob = microgemm.flat(xt, xt.size), microgemm.flat(ob, ob.size)
        for task in range(chunk * ntasks // nchunks, (chunk + 1) * ntasks // nchunks):
            r0 = task * band
            r1 = min(total, r0 + band)
            T = (r1 - r0) * ntx
            v = vbuf[:ALPHA * ALPHA * T * Cp]
            m = mbuf[:ALPHA * ALPHA * T * Cop]
            for r in range(r0, r1):
                n, ty = r // nty, r % nty
                _fill_rows(x, n, ty * M - ph, pw, xt)
                for tx in range(ntx):
                    t = (r - r0) * ntx + tx
                    for c0 in range(0, Cp, L):
                        input_tile(fx, tx * M * Cp + c0, Wp * Cp, Cp, v, t * Cp + c0, T * Cp)
            for ab in range(ALPHA * ALPHA):
                microgemm.gemm(False, T, Co, C, v[ab * T * Cp:], Cp, u[ab], Cop, m[ab * T * Cop:], Cop, 0.0)
            for r in range(r0, r1):
                n, ty = r // nty, r % nty
                for tx in range(ntx):
                    t = (r - r0) * ntx + tx
                    for o0 in range(0, Cop, L):
                        output_tile(m, t * Cop + o0, T * Cop, fob, tx * M * Cop + o0, ntx * M * Cop, Cop, bp, o0, lo, hi)
                for i in range(min(M, Ho - ty * M)):
                    for o in range(Co):
                        dst = y[n, o, ty * M + i]
                        src = ob[i, :, o]
                        for xx in range(Wo):
                            dst[xx] = src[xx]


def warm(dtype) -> None:
    x = np.zeros((1, 1, 5, 5), dtype)
    w = np.zeros((1, 1, 3, 3), dtype)
    u = np.empty((ALPHA * ALPHA, 1, LANE_BYTES // np.dtype(dtype).itemsize), dtype)
    transform_weights(w, u, False)
    conv_forward(x, u, np.empty((1, 1, 5, 5), dtype), np.zeros(1, dtype), dtype(-np.inf), dtype(np.inf), 1, 1, 1, 1)
