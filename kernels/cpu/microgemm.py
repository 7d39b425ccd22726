"""fastconv's own GEMM: a register-blocked micro-kernel emitted as LLVM IR, and the loops around it.

The convolutions' GEMMs are thin and odd-shaped: 64 rows by K = 27 (an RGB stem), 147 (a 7x7
stem) or 512 (a transposed 4x4 conv), by a few thousand columns. On one core of the development
VM, alternating with OpenBLAS in one process on the panels the kernels pass (bench/NOTES.md):
b's forward GEMM 118 GFLOP/s against OpenBLAS's 105, b's input gradient 159 / 114, e's 141 /
125, the 64 x 196 x 512 of g2 114 / 102, a2's K = 27 111 / 70, and a3's 256 x 1568 x 2304, the
shape BLAS is built for, 106 / 106.

The micro-kernel computes an MR x NR block of ``C = A @ B`` in the way BLIS and OpenBLAS write
theirs in assembly: MR * NV accumulator vectors of W lanes (NR = NV * W columns) stay in
registers for the whole k loop; each step loads NV vectors of row p of B, broadcasts MR
elements of column p of A, and issues MR * NV fused multiply-adds. Numba has no vector type,
so the loop is built with llvmlite's IR builder inside a ``numba.extending.intrinsic`` (the
accumulators are phi nodes), and LLVM allocates the registers and schedules it. MR, NV and W
are chosen from the host's vector width when this module is imported: 6 x 4 vectors of 64
bytes with AVX-512 (24 of its 32 registers), 6 x 2 vectors of 32 bytes with AVX2, 6 x 2 of
16 bytes otherwise.

``gemm`` takes row-major panels given by their first element and leading dimensions, as BLAS
does, with B not transposed (the weight gradient transposes its product so that B is the small
operand, copied transposed: ``gemm.conv_grad_weight``). A is read in place, either way round
(its MR rows are broadcast element by element); so is B, except for the last, narrower column
panel, which is copied into a zero-padded panel of NR columns. ``gemm_bias_clip`` adds the
convolution's epilogue (bias, clip), applied to each block of C as soon as it is written.
"""
import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

from ._common import clip
from ._vector_ir import VectorIR


def _host_vector_bytes() -> int:
    """The widest vector registers of the CPU Numba compiles for: 64 (AVX-512), 32 (AVX), 16."""
    features = (config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()).split(",")
    return 64 if "+avx512f" in features else 32 if "+avx" in features else 16


VECTOR_BYTES = _host_vector_bytes()
#: Rows of A per micro-kernel call, and vectors of B per row: 24 accumulators of AVX-512's 32
#: registers, 12 of AVX2's 16.
MR = 6
NV = 4 if VECTOR_BYTES == 64 else 2


def panel_width(dtype, nv: int = NV, vector_bytes: int = VECTOR_BYTES) -> int:
    """NR: the columns of C one micro-kernel call computes."""
    return nv * vector_bytes // np.dtype(dtype).itemsize


@intrinsic
def flat(typingctx, arr, size):
    """A 1-D view of ``size`` elements starting at ``arr``'s first element, whatever its strides.

    The GEMM addresses its panels by leading dimension, past the bounds of the view it was
    given (the rows of ``y[n, o0:, y0:]`` run on into the next plane): this is the flat memory
    those offsets index, as BLAS sees it.
    """
    out = types.Array(arr.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        dst = context.make_array(out)(context, builder)
        n = context.cast(builder, args[1], sig.args[1], types.intp)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(arr.dtype)))
        context.populate_array(dst, data=src.data, shape=cgutils.pack_array(builder, [n]),
                               strides=cgutils.pack_array(builder, [itemsize]), itemsize=itemsize,
                               meminfo=None)       # a borrowed view: the caller's array owns the data
        return dst._getvalue()
    return out(arr, size), codegen


def _emit(context, builder, sig, args, nv: int, vector_bytes: int):
    """The micro-kernel's IR (see ``make_micro_kernel``)."""
    e = VectorIR(context, builder, sig, args, sig.args[1].dtype, vector_bytes)
    k, a_off, a_rs, a_ks, b_off, b_ks, c_off, ldc, mr = (e.int64(i) for i in (0, 2, 3, 4, 6, 7, 9, 10, 11))
    beta = args[12]
    W, const = e.W, e.const
    A = builder.gep(e.data(1), [a_off])
    B = builder.gep(e.data(5), [b_off])
    C = builder.gep(e.data(8), [c_off])
    last = builder.sub(mr, const(1))
    rows = [builder.gep(A, [builder.mul(builder.select(builder.icmp_signed("<", const(i), mr), const(i), last), a_rs)])
            for i in range(MR)]

    # for (p = 0; p < k; p++) acc[i][v] = fmuladd(splat(A[i, p]), B[p, v*W : (v+1)*W], acc[i][v])
    entry = builder.block
    head = builder.append_basic_block("mk.head")
    body = builder.append_basic_block("mk.body")
    done = builder.append_basic_block("mk.done")
    builder.branch(head)
    builder.position_at_end(head)
    p = builder.phi(e.i64)
    acc = [[builder.phi(e.vec) for _ in range(nv)] for _ in range(MR)]
    p.add_incoming(const(0), entry)
    for row in acc:
        for v in row:
            v.add_incoming(e.constant(0.0), entry)
    builder.cbranch(builder.icmp_signed("<", p, k), body, done)

    builder.position_at_end(body)
    brow = builder.gep(B, [builder.mul(p, b_ks)])
    bv = [e.load(brow, const(v * W)) for v in range(nv)]
    pa = builder.mul(p, a_ks)
    for i in range(MR):
        ai = e.splat(builder.load(builder.gep(rows[i], [pa])))
        for v in range(nv):
            acc[i][v].add_incoming(e.fmuladd(ai, bv[v], acc[i][v]), body)
    p.add_incoming(builder.add(p, const(1)), body)
    builder.branch(head)

    # C[i] = acc[i] (beta == 0: C is not read) or beta * C[i] + acc[i], for rows i < mr
    builder.position_at_end(done)
    beta_v = e.splat(beta)
    overwrite = builder.fcmp_ordered("==", beta, ir.Constant(e.scalar, 0.0))
    for i in range(MR):
        with cgutils.if_likely(builder, builder.icmp_signed("<", const(i), mr)):
            crow = builder.gep(C, [builder.mul(ldc, const(i))])
            with builder.if_else(overwrite) as (then, otherwise):
                with then:
                    for v in range(nv):
                        e.store(acc[i][v], crow, const(v * W))
                with otherwise:
                    for v in range(nv):
                        e.store(e.fmuladd(beta_v, e.load(crow, const(v * W)), acc[i][v]), crow, const(v * W))
    return context.get_dummy_value()


def make_micro_kernel(nv: int, vector_bytes: int = VECTOR_BYTES):
    """The micro-kernel computing MR x (nv vectors of ``vector_bytes``) of C, as a Numba intrinsic.

    ``micro_kernel(k, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, mr, beta)`` sets
    C[i, j] = beta * C[i, j] + sum_{p < k} A[i, p] B[p, j] for i < mr (<= MR), j < NR. The
    arrays are flat (``flat``) and of one dtype (float32 or float64): A[i, p] is
    a[a_off + i*a_rs + p*a_ks], row p of B is b[b_off + p*b_ks :][:NR], C[i, j] is
    c[c_off + i*ldc + j]. Rows of A past ``mr`` are read as row mr - 1 and their results
    dropped. With beta == 0, C is not read. Nothing is bounds-checked: the caller's offsets
    must lie inside the arrays.
    """
    @intrinsic
    def micro_kernel(typingctx, k, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, mr, beta):
        ints = (k, a_off, a_rs, a_ks, b_off, b_ks, c_off, ldc, mr)
        if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)
                and b.dtype == a.dtype and c.dtype == a.dtype and all(isinstance(t, types.Integer) for t in ints)):
            return None
        sig = types.void(k, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, mr, a.dtype)
        return sig, lambda context, builder, sig, args: _emit(context, builder, sig, args, nv, vector_bytes)
    return micro_kernel


#: The full-width kernel, and narrower ones for the last column panel.
micro_kernel = make_micro_kernel(NV)
_micro_1, _micro_2, _micro_3 = (make_micro_kernel(nv) for nv in (1, 2, 3))


#: Bytes of one packed or streamed B panel (KC x NR elements): it stays in L1 while every row
#: block of A passes over it, and stays under malloc's mmap threshold when packed.
PANEL_BYTES = 32 * 1024


@njit(inline="always")
def _pack(fb, ldb, p0, kc, j0, w, panel, NR):
    """panel[p, jj] = B[p0 + p, j0 + jj] for jj < w, zero for w <= jj < NR."""
    for p in range(kc):
        row = panel[p * NR:(p + 1) * NR]
        src = fb[(p0 + p) * ldb + j0:]
        for jj in range(w):
            row[jj] = src[jj]
        for jj in range(w, NR):
            row[jj] = 0.0


@njit(inline="always")
def _narrow_kernel(nv, kc, fa, a_off, a_rs, a_ks, panel, NR, tile, t_off, mr, beta):
    """The micro-kernel on the first ``nv`` vectors of a packed panel (the last, narrow panel)."""
    if nv == 1:
        _micro_1(kc, fa, a_off, a_rs, a_ks, panel, 0, NR, tile, t_off, NR, mr, beta)
    elif nv == 2 and NV > 2:
        _micro_2(kc, fa, a_off, a_rs, a_ks, panel, 0, NR, tile, t_off, NR, mr, beta)
    elif nv == 3 and NV > 3:
        _micro_3(kc, fa, a_off, a_rs, a_ks, panel, 0, NR, tile, t_off, NR, mr, beta)
    else:
        micro_kernel(kc, fa, a_off, a_rs, a_ks, panel, 0, NR, tile, t_off, NR, mr, beta)


@njit(inline="always")
def gemm(trans_a, m, n, k, a, lda, b, ldb, c, ldc, beta):
    """c[:m, :n] = op(a) @ b + beta * c for row-major panels given by their first element.

    ``a``, ``b``, ``c`` are arrays (any shape, any view) whose first element starts the panel
    and whose rows are ``lda``, ``ldb``, ``ldc`` elements apart, as in BLAS's row-major gemm;
    op(a) is m x k (stored k x m when ``trans_a``), b is k x n. With beta == 0, c is not read.

    Inlined into the caller, this only makes flat views of the three panels; the product runs
    in ``gemm_flat``, compiled once per dtype (inlining the loops into every kernel tripled
    their compile time).
    """
    if m > 0 and n > 0:
        i64 = np.int64
        a_rs, a_ks = (i64(1), i64(lda)) if trans_a else (i64(lda), i64(1))
        gemm_flat(i64(m), i64(n), i64(k), flat(a, max(0, (m - 1) * a_rs + (k - 1) * a_ks + 1)), a_rs, a_ks,
                  flat(b, max(0, (k - 1) * ldb + n)), i64(ldb), flat(c, (m - 1) * ldc + n), i64(ldc), float(beta),
                  False, np.empty(0, c.dtype), -np.inf, np.inf)


@njit(inline="always")
def gemm_bias_clip(m, n, k, a, lda, b, ldb, c, ldc, bias, lo, hi):
    """c[:m, :n] = clip(a @ b + bias[:, None], lo, hi): ``gemm`` with the convolution's epilogue
    applied to each block of c right after the micro-kernel wrote it, while it is in L1."""
    if m > 0 and n > 0:
        i64 = np.int64
        gemm_flat(i64(m), i64(n), i64(k), flat(a, max(0, (m - 1) * lda + k)), i64(lda), i64(1),
                  flat(b, max(0, (k - 1) * ldb + n)), i64(ldb), flat(c, (m - 1) * ldc + n), i64(ldc), 0.0,
                  True, bias, lo, hi)


@njit(inline="always")
def _epilogue(row, w, b, lo, hi):
    for jj in range(w):
        row[jj] = clip(row[jj] + b, lo, hi)


@njit(cache=True)
def gemm_flat(m, n, k, fa, a_rs, a_ks, fb, ldb, fc, ldc, beta, fused, bias, lo, hi):
    """``gemm`` on flat arrays: A[i, p] = fa[i*a_rs + p*a_ks], B[p, j] = fb[p*ldb + j],
    C[i, j] = fc[i*ldc + j]; when ``fused`` (and beta == 0), then C[i, :] = clip(C[i, :] +
    bias[i], lo, hi).

    Loops, outermost first: depth blocks of KC (p0), column panels of NR (j0), row blocks of
    MR (i0). The B panel of one (p0, j0) is reused by every row block while it sits in L1;
    the block of A of one p0 (m x KC) is reused by every column panel from L2. The last
    panel, narrower than NR, is packed and computed into a scratch tile by a kernel of just
    enough vectors, and merged into c at the end.
    """
    W = VECTOR_BYTES // fc.itemsize
    NR = NV * W
    KC = PANEL_BYTES // (NR * fc.itemsize)
    panel = np.empty(min(k, KC) * NR, fc.dtype)
    tile = np.empty(((m + MR - 1) // MR) * MR * NR if n % NR else 0, fc.dtype)     # the narrow panel's
    for p0 in range(0, max(k, 1), KC):
        kc = min(KC, k - p0)
        b_eff = beta if p0 == 0 else 1.0
        for j0 in range(0, n, NR):
            w = min(NR, n - j0)
            if w < NR:
                _pack(fb, ldb, p0, kc, j0, w, panel, NR)
            for i0 in range(0, m, MR):
                mr = min(MR, m - i0)
                a_off = i0 * a_rs + p0 * a_ks
                if w < NR:
                    _narrow_kernel((w + W - 1) // W, kc, fa, a_off, a_rs, a_ks, panel, NR, tile, i0 * NR, mr,
                                   0.0 if p0 == 0 else 1.0)
                else:
                    micro_kernel(kc, fa, a_off, a_rs, a_ks, fb, p0 * ldb + j0, ldb, fc, i0 * ldc + j0, ldc,
                                 mr, b_eff)
                    if fused and p0 + KC >= k:
                        for i in range(i0, i0 + mr):
                            _epilogue(fc[i * ldc + j0:], NR, bias[i], lo, hi)
    j0 = n - n % NR
    if j0 < n:
        w = n - j0
        for i in range(m):
            dst = fc[i * ldc + j0:]
            src = tile[i * NR:]
            if beta == 0.0:
                for jj in range(w):
                    dst[jj] = src[jj]
            else:
                for jj in range(w):
                    dst[jj] = beta * dst[jj] + src[jj]
            if fused:
                _epilogue(dst, w, bias[i], lo, hi)
