"""What the CUDA backend compiles: sources, options and name expressions, in one table.

Both the RawModule loader (:mod:`fastconv.backends.cuda`) and the compile check of the test
suite (``tests/test_cuda_compile.py``, which runs without CuPy or a GPU) read this module, so
the check compiles exactly the specializations that run. Nothing here imports CuPy.

Example:
    >>> from fastconv.backends import _cuda_src as src
    >>> src.name_expressions("pool", "float32")[0]
    'max_pool2d_fwd<float>'
"""
from __future__ import annotations

import re
from importlib import resources

#: module name -> source file in fastconv.kernels.cuda
MODULES = {
    "conv": "conv.cu",
    "im2col": "im2col.cu",
    "igemm": "implicit_gemm.cu",
    "pool": "pool.cu",
    "winograd": "winograd.cu",
}

#: NVRTC options passed to RawModule (CuPy adds the architecture of the device itself).
COMPILE_OPTIONS = ("-std=c++17",)

CTYPES = {"float32": "float", "float64": "double"}

#: Implicit-GEMM tile configurations (BM, BN, BK, TM, TN) per dtype, by name, in the order
#: igemm_tile tries them. float32's were picked by ``bench/gpu_sweep.py`` on an H200 (14 tiles,
#: the anchors at N=64; bench/NOTES.md): a 16-deep K step beat 8 on every anchor with a 4x4 or
#: 4x8 register tile, and 64x64 won wherever a larger tile left SMs idle (a3, c).
#: float64 keeps a 4x4 register tile: 8x8 doubles would need ~200 registers.
IGEMM_TILES = {
    "float32": {"128x128x16": (128, 128, 16, 8, 8), "64x128x16": (64, 128, 16, 4, 8),
                "64x64x16": (64, 64, 16, 4, 4), "32x128x16": (32, 128, 16, 4, 4)},
    "float64": {"64x64": (64, 64, 8, 4, 4), "32x128": (32, 128, 8, 2, 8)},
}

#: A tile is taken only if the grid holds at least this many blocks per SM (else the next,
#: smaller one): the sweep's a3 (196 blocks of 128x128 on 132 SMs) and c (392 of 64x128) ran
#: 1.12x and 1.2x slower than with 64x64 tiles.
IGEMM_MIN_BLOCKS_PER_SM = 4

#: Depthwise kernel sizes compiled with the taps unrolled; other sizes use the (0, 0) kernel.
DEPTHWISE_FIXED = ((3, 3), (5, 5))

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.M)


def compile_options() -> tuple[str, ...]:
    """The options RawModule compiles with (also used by the nvcc compile check)."""
    return COMPILE_OPTIONS


def ctype(dtype) -> str:
    """'float' or 'double' for a NumPy/CuPy dtype (or its name)."""
    name = getattr(dtype, "name", None) or str(dtype)
    try:
        return CTYPES[name]
    except KeyError:
        raise TypeError(f"the CUDA kernels compute in float32 or float64, got {name}") from None


def igemm_name(dtype, tile: str, kernel: str = "igemm_conv") -> str:
    """The name expression of ``kernel`` (igemm_conv or igemm_wgrad) with ``tile``."""
    bm, bn, bk, tm, tn = IGEMM_TILES[getattr(dtype, "name", str(dtype))][tile]
    return f"{kernel}<{ctype(dtype)},{bm},{bn},{bk},{tm},{tn}>"


def depthwise_name(dtype, kh: int, kw: int) -> str:
    fixed = (kh, kw) if (kh, kw) in DEPTHWISE_FIXED else (0, 0)
    return f"conv2d_depthwise_fwd<{ctype(dtype)},{fixed[0]},{fixed[1]}>"


def name_expressions(module: str, dtype) -> tuple[str, ...]:
    """Every kernel specialization of ``module`` for ``dtype``, as RawModule name expressions."""
    t = ctype(dtype)
    if module == "conv":
        dw = [depthwise_name(dtype, kh, kw) for kh, kw in DEPTHWISE_FIXED] + [depthwise_name(dtype, 1, 1)]
        return (f"conv2d_direct_fwd<{t}>", *dw, f"conv2d_direct_bwd_input<{t}>",
                f"conv2d_direct_bwd_weight<{t}>")
    if module == "im2col":
        return (f"im2col_kernel<{t}>", f"col2im_gather<{t}>")
    if module == "igemm":
        return tuple(igemm_name(dtype, tile, kernel) for kernel in ("igemm_conv", "igemm_wgrad")
                     for tile in IGEMM_TILES[getattr(dtype, "name", str(dtype))])
    if module == "pool":
        return (f"max_pool2d_fwd<{t}>", f"max_pool2d_bwd<{t}>", f"avg_pool2d_fwd<{t}>", f"avg_pool2d_bwd<{t}>")
    if module == "winograd":
        return (f"winograd_weight<{t}>", f"winograd_input<{t}>", f"winograd_output<{t}>", f"winograd_dy<{t}>",
                f"winograd_dw<{t}>")
    raise ValueError(f"unknown CUDA module {module!r}; expected one of {tuple(MODULES)}")


def _read(filename: str) -> str:
    return resources.files("fastconv.kernels.cuda").joinpath(filename).read_text(encoding="utf-8")


def kernel_source(module: str) -> str:
    """The source of ``module`` with its local ``#include "x.cuh"`` lines inlined.

    Inlining (rather than ``-I`` and NVRTC's include path) keeps every byte the compiler sees in
    the string CuPy hashes for its kernel cache, so editing a header recompiles its users.
    """
    seen: set[str] = set()

    def expand(text: str) -> str:
        def sub(m):
            name = m.group(1)
            if name in seen:
                return ""
            seen.add(name)
            return f"// ---- begin {name}\n{expand(_read(name))}\n// ---- end {name}"
        return _INCLUDE.sub(sub, text)

    return expand(_read(MODULES[module]))


# ----------------------------------------------------------------------------- implicit-GEMM plans
class IgemmPlan:
    """The gather tables and scalar arguments of one ``igemm_conv`` launch (NumPy, host side).

    ``ktab`` (K_total, 4) int32 and ``phases`` (nphase, 6) int32 are described at the top of
    ``kernels/cuda/implicit_gemm.cu``; ``scalars`` are the kernel's integer arguments in order,
    after the five pointers; ``M`` is the GEMM's row count, ``max_p`` the pixel count of the
    largest phase (the grid's x extent in tiles of BN), ``nphase`` the phases per group.
    """

    __slots__ = ("ktab", "phases", "scalars", "M", "max_p", "nphase")

    def __init__(self, ktab, phases, scalars, M, max_p, nphase):
        self.ktab, self.phases, self.scalars = ktab, phases, scalars
        self.M, self.max_p, self.nphase = M, max_p, nphase


#: Names of ``IgemmPlan.scalars``, in the kernel's argument order (long long ones marked).
IGEMM_SCALARS = ("M", "Nimg", "in_img:ll", "in_grp:ll", "Hin", "Win", "su", "ou", "sv", "ov",
                 "w_grp:ll", "w_m", "out_img:ll", "out_grp:ll", "out_plane", "Wout", "tu", "tv", "nphase")


def igemm_plan(g, mode: str) -> IgemmPlan:
    """Tables for the forward convolution (``mode='forward'``) or its input gradient ('grad_input').

    Forward, per group: y (Og x N*Ho*Wo) = w (Og x Cg*KH*KW) @ im2col(x), k = (c, i, j).
    Input gradient, per group and per stride phase (y0, x0): the dx pixels
    (y0 + a*sh, x0 + b*sw) take exactly the taps i with (y0 + ph - i*dh) % sh == 0 (and j
    likewise), which read dy row a + (y0 + ph - i*dh) // sh; k = (o, i, j) over those taps.
    """
    import numpy as np

    G = g.groups
    Cg, Og = g.C_in // G, g.C_out // G
    KH, KW = g.kernel
    H, W = g.in_size
    Ho, Wo = g.out_size
    sh, sw = g.stride
    dh, dw = g.dilation
    ph, pw = g.padding[0][0], g.padding[1][0]
    K = Cg * KH * KW
    if mode == "forward":
        c, i, j = (a.ravel() for a in np.meshgrid(np.arange(Cg), np.arange(KH), np.arange(KW), indexing="ij"))
        ktab = np.stack([c * H * W + i * dh * W + j * dw, i * dh, j * dw, np.arange(K)], axis=1)
        phases = np.array([[0, K, Ho, Wo, 0, 0]])
        sc = dict(M=Og, Nimg=g.N, in_img=g.C_in * H * W, in_grp=Cg * H * W, Hin=H, Win=W,
                  su=sh, ou=-ph, sv=sw, ov=-pw, w_grp=Og * K, w_m=K, out_img=g.C_out * Ho * Wo,
                  out_grp=Og * Ho * Wo, out_plane=Ho * Wo, Wout=Wo, tu=1, tv=1, nphase=1)
        max_p = g.N * Ho * Wo
    elif mode == "grad_input":
        rows, phase_rows, max_p = [], [], 0
        for y0 in range(min(sh, H)):
            ti = [(i, (y0 + ph - i * dh) // sh) for i in range(KH) if (y0 + ph - i * dh) % sh == 0]
            for x0 in range(min(sw, W)):
                tj = [(j, (x0 + pw - j * dw) // sw) for j in range(KW) if (x0 + pw - j * dw) % sw == 0]
                start = sum(len(r) for r in rows)
                ent = [(o * Ho * Wo + ty * Wo + tx, ty, tx, o * Cg * KH * KW + i * KW + j)
                       for o in range(Og) for i, ty in ti for j, tx in tj]
                rows.append(ent)
                PU, PV = -(-(H - y0) // sh), -(-(W - x0) // sw)
                phase_rows.append([start, len(ent), PU, PV, y0, x0])
                max_p = max(max_p, g.N * PU * PV)
        flat = [e for r in rows for e in r] or [(0, 0, 0, 0)]  # never an empty device array
        ktab = np.array(flat)
        phases = np.array(phase_rows)
        sc = dict(M=Cg, Nimg=g.N, in_img=g.C_out * Ho * Wo, in_grp=Og * Ho * Wo, Hin=Ho, Win=Wo,
                  su=1, ou=0, sv=1, ov=0, w_grp=Og * K, w_m=KH * KW, out_img=g.C_in * H * W,
                  out_grp=Cg * H * W, out_plane=H * W, Wout=W, tu=sh, tv=sw, nphase=len(phase_rows))
    else:
        raise ValueError(f"mode must be 'forward' or 'grad_input', got {mode!r}")
    if max(abs(int(ktab.min())), int(ktab.max()), max_p, sc["in_img"], sc["out_img"]) >= 2**31:
        raise ValueError(f"the implicit GEMM indexes one image and the pixel count in 32 bits; "
                         f"this convolution (input {g.x_shape}, output {g.y_shape}) is too large: "
                         f"use algo='direct' or 'im2col'")
    scalars = tuple(sc[n.split(":")[0]] for n in IGEMM_SCALARS)
    return IgemmPlan(np.ascontiguousarray(ktab, np.int32), np.ascontiguousarray(phases, np.int32),
                     scalars, sc["M"], max_p, sc["nphase"])


def igemm_tile(dtype, M: int, P: int = 1 << 30, batches: int = 1, sms: int = 132) -> str:
    """The tile for a GEMM of M rows and P columns, ``batches`` times (groups x stride phases),
    on a GPU of ``sms`` multiprocessors.

    Rows first: no tile taller than needed (a 128-row tile on 64 channels idles half its
    threads). Then the largest such tile whose grid fills every SM IGEMM_MIN_BLOCKS_PER_SM
    times, else the smallest.

    Example:
        >>> igemm_tile("float32", 64, 200704), igemm_tile("float32", 256, 12544)
        ('64x128x16', '64x64x16')
    """
    tiles = IGEMM_TILES[getattr(dtype, "name", str(dtype))]
    heights = sorted({bm for bm, *_ in tiles.values()})
    rows = next((h for h in heights if h >= M), heights[-1])
    fits = [t for t, (bm, *_) in tiles.items() if bm <= rows]
    for t in fits:
        bm, bn = tiles[t][:2]
        if -(-M // bm) * -(-P // bn) * batches >= IGEMM_MIN_BLOCKS_PER_SM * sms:
            return t
    return fits[-1]