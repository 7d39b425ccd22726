"""Vector code for Numba intrinsics: the LLVM IR that the GEMM micro-kernel and the Winograd
transforms are written in.

Numba has no vector type, and its loop vectorizer gives up on loops that load and store through
many runtime strides (it would need an alias check for every pair). Kernels that need W lanes
at a time build them in an ``numba.extending.intrinsic`` with :class:`VectorIR`, which wraps
llvmlite's IR builder: loads and stores of W-lane vectors at element offsets of flat arrays,
fused multiply-adds, linear combinations with constant matrices, and a transpose in registers.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils


def float_arrays(*arrs) -> bool:
    """Whether the intrinsic's array arguments are all float32 or all float64 arrays."""
    return (all(isinstance(a, types.Array) for a in arrs) and arrs[0].dtype in (types.float32, types.float64)
            and all(a.dtype == arrs[0].dtype for a in arrs))


class VectorIR:
    """Vector IR for one intrinsic call: ``args`` typed by ``sig``, vectors of ``vector_bytes``
    holding W elements of ``dtype`` (a Numba float type). Offsets are element offsets (int64
    values)."""

    def __init__(self, context, builder, sig, args, dtype, vector_bytes: int):
        self.context, self.builder, self.sig, self.args = context, builder, sig, args
        self.W = vector_bytes * 8 // dtype.bitwidth
        self.scalar = context.get_value_type(dtype)
        self.vec = ir.VectorType(self.scalar, self.W)
        self.align = dtype.bitwidth // 8
        self.i64 = ir.IntType(64)
        self._fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(self.vec, [self.vec] * 3),
                                                       f"llvm.fmuladd.v{self.W}f{dtype.bitwidth}")

    # arguments
    def int64(self, i):
        """Argument i as an int64 value."""
        return self.context.cast(self.builder, self.args[i], self.sig.args[i], types.int64)

    def value(self, i, ty):
        """Argument i cast to the Numba type ``ty``."""
        return self.context.cast(self.builder, self.args[i], self.sig.args[i], ty)

    def data(self, i):
        """The data pointer of array argument i."""
        return self.context.make_array(self.sig.args[i])(self.context, self.builder, self.args[i]).data

    # offsets
    def const(self, v):
        return ir.Constant(self.i64, v)

    def offset(self, base, *terms):
        """base + sum(c * stride) over (constant c, stride value) pairs."""
        for c, stride in terms:
            if c:
                base = self.builder.add(base, self.builder.mul(self.const(c), stride))
        return base

    # memory
    def _address(self, ptr, off):
        return self.builder.bitcast(self.builder.gep(ptr, [off]), self.vec.as_pointer())

    def load(self, ptr, off):
        return self.builder.load(self._address(ptr, off), align=self.align)

    def store(self, v, ptr, off):
        self.builder.store(v, self._address(ptr, off), align=self.align)

    # arithmetic
    def splat(self, s):
        """A vector of W copies of the scalar value ``s``."""
        one = self.builder.insert_element(ir.Constant(self.vec, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
        return self.builder.shuffle_vector(one, ir.Constant(self.vec, ir.Undefined),
                                           ir.Constant(ir.VectorType(ir.IntType(32), self.W), [0] * self.W))

    def constant(self, c):
        return ir.Constant(self.vec, [c] * self.W)

    def fmuladd(self, a, b, c):
        """a * b + c, fused where the target has FMA."""
        return self.builder.call(self._fmuladd, [a, b, c])

    def combine(self, row, vectors):
        """sum_j row[j] * vectors[j] for a row of Python constants (zeros skipped, +-1 as an add or
        a subtract); at least one constant must be non-zero."""
        b, acc = self.builder, None
        for c, v in zip(row, vectors):
            if c == 0:
                continue
            if acc is None:
                acc = v if c == 1 else b.fneg(v) if c == -1 else b.fmul(self.constant(c), v)
            else:
                acc = b.fadd(acc, v) if c == 1 else b.fsub(acc, v) if c == -1 else self.fmuladd(self.constant(c), v, acc)
        return acc

    def sandwich(self, left, grid):
        """left @ grid @ left^T, for a constant matrix ``left`` (r x k, nested lists) and a k x k grid
        of vectors (a list of rows): r x r vectors."""
        half = [[self.combine(row, col) for col in zip(*grid)] for row in left]       # left @ grid
        return [[self.combine(row, h) for row in left] for h in half]                 # (...) @ left^T

    def transpose(self, rows):
        """The W x W transpose of W vectors, by log2(W) rounds of two-source shuffles: round
        ``bit`` swaps that bit of the row index with the same bit of the lane index."""
        n, rows = self.W, list(rows)
        mask_type = ir.VectorType(ir.IntType(32), n)
        bit = 1
        while bit < n:
            low = ir.Constant(mask_type, [c if not c & bit else n + (c ^ bit) for c in range(n)])
            high = ir.Constant(mask_type, [c | bit if not c & bit else n + c for c in range(n)])
            for i in range(n):
                if not i & bit:
                    a, b = rows[i], rows[i | bit]
                    rows[i] = self.builder.shuffle_vector(a, b, low)
                    rows[i | bit] = self.builder.shuffle_vector(a, b, high)
            bit *= 2
        return rows
