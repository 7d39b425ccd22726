"""CUDA backend: the CuPy RawKernels of ``kernels/cuda`` behind the backend contract.

The contract is the CPU backend's (see :mod:`fastconv.backends.cpu`): arrays are 4-D NCHW,
C-contiguous CuPy arrays of float32/float64, ``geom`` a validated
:class:`~fastconv.geometry.ConvGeometry`, and

    conv_forward(x, w, geom, algo)      -> y   (N, C_out, Ho, Wo)
    conv_grad_input(dy, w, geom, algo)  -> dx  (N, C_in, H, W)   == the transposed convolution
    conv_grad_weight(x, dy, geom, algo) -> dw  (C_out, C_in/groups, KH, KW)

Validation, geometry and the composition of gradients live in fastconv.functional/grad and
geometry, shared with the CPU; this module only launches kernels.

Algorithms:
    ``'direct'``         one thread per output element (``conv.cu``); depthwise has its own kernel
                         with the 3x3 / 5x5 taps unrolled. Input gradient in the gather form,
                         weight gradient as one block reduction per weight element.
    ``'im2col'``         ``im2col.cu`` columns per batch tile (under :data:`WORKSPACE_BYTES`) and a
                         cuBLAS GEMM (``cupy.matmul``); the input gradient multiplies first and
                         folds back with the gather-form col2im (no atomics). A pointwise 1x1
                         convolution is a GEMM on the input itself.
    ``'implicit_gemm'``  ``implicit_gemm.cu``: shared-memory tiled GEMM gathering the columns on
                         the fly (Chetlur et al. 2014, cuDNN); the input gradient is split into
                         stride phases so that no structural zero is multiplied.
                         The weight gradient is the same GEMM with its reduction over N*Ho*Wo
                         split into chunks (enough blocks to fill the GPU), whose partial tiles
                         are summed in a fixed order (``igemm_wgrad``).
    ``'winograd'``       ``winograd.cu``: F(2x2, 3x3) for dense 3x3 stride-1 convolutions (forward
                         and input gradient): filter, input and output transforms around one
                         batched cuBLAS GEMM of 16 products (2.25x fewer multiply-adds); the
                         weight gradient is its transposition F(3x3, 2x2), 16 GEMMs reducing
                         over the tiles. ``auto`` takes it for dense 3x3 stride-1 layers of 64
                         channels and more (the weight gradient from 256 x 256 weights per tap).

Every kernel is deterministic (fixed reduction orders, no atomics), so two runs agree bit for
bit. cuBLAS follows CuPy's TF32 setting (off unless ``CUPY_TF32=1``).

Example:
    >>> import cupy as cp, fastconv
    >>> x = cp.random.rand(8, 3, 32, 32, dtype=cp.float32)
    >>> w = cp.random.rand(16, 3, 3, 3, dtype=cp.float32)
    >>> fastconv.conv2d(x, w, padding=1, algo='implicit_gemm').shape
    (8, 16, 32, 32)
"""
from __future__ import annotations

import functools

import numpy as np
import cupy

from fastconv.backends import _cuda_src as src
from fastconv.geometry import ConvGeometry, check_winograd


def _require_device() -> None:
    """Fail the import (which get_backend turns into a clear RuntimeError) without a GPU."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device, driver too old
        raise ImportError(f"CuPy is installed but no CUDA device is usable ({exc})") from exc
    if count < 1:
        raise ImportError("CuPy is installed but no CUDA device was found")


_require_device()

name = "cuda"
xp = cupy
ALGOS = ("direct", "im2col", "implicit_gemm", "winograd")

#: Threads per block of the one-thread-per-element kernels.
BLOCK = 256
#: The implicit-GEMM weight gradient's tile height cap, blocks per SM its split aims at, and the
#: fewest K steps in a chunk (bench/gpu_sweep.py's tile x split table on an H200: a3's 256 rows
#: ran 0.63 ms in 64x128 tiles split 16 ways against 0.73 ms in the 128x128 tiles of the old rule;
#: 5-10 blocks per SM and chunks of 25-100 steps were best on every anchor).
WGRAD_MAX_ROWS = 64
WGRAD_BLOCKS_PER_SM = 8
WGRAD_MIN_STEPS = 32
#: ``auto`` takes Winograd for dense 3x3 stride-1 convolutions from this many channels (in and out):
#: on an H200 at N=64 it tied with the implicit GEMM at 32 -> 32 channels (56x56: 0.21 against
#: 0.22 ms) and at 16 -> 16 (112x112), lost at 8 -> 8 and on the 3 -> 64 stem, won from 64.
WINOGRAD_MIN_CHANNELS = 64
#: ... and its weight gradient from this many C_in x C_out weights per tap: each of its 16 GEMMs
#: has that many outputs and a reduction over every 2x2 tile of the batch, which cuBLAS ran well
#: on a3's 256 x 256 (0.37 ms against the implicit GEMM's 0.72) but not on a1's 64 x 64 with its
#: 20k-long reductions (2.1 ms in the GEMMs against 0.70; 8 -> 8 to 32 -> 32 lost alike).
WINOGRAD_GRAD_WEIGHT_MIN_OUTPUTS = 256 * 256
#: Bytes the im2col column buffer may take; the batch is tiled to fit (at least one image).
WORKSPACE_BYTES = 256 * 1024 * 1024
_MAX_GRID = 1 << 24  # grid-stride kernels cover the rest
#: Pixels each thread of a per-plane kernel (im2col, depthwise) takes, and the blocks per SM
#: below which planes are shared by more blocks anyway (``_launch_planes``).
PLANE_PIXELS_PER_THREAD = 16
PLANE_MIN_BLOCKS_PER_SM = 8
_i32 = np.int32


# ----------------------------------------------------------------------------- loading
@functools.lru_cache(maxsize=None)
def _module(device_id: int, module: str, dtype_name: str):
    """One RawModule per device, source module and dtype, holding all its specializations."""
    return cupy.RawModule(code=src.kernel_source(module), options=src.compile_options(),
                          name_expressions=src.name_expressions(module, dtype_name))


@functools.lru_cache(maxsize=None)
def _function(device_id: int, module: str, dtype_name: str, expr: str):
    return _module(device_id, module, dtype_name).get_function(expr)


def _kernel(module: str, expr: str, dtype):
    return _function(cupy.cuda.Device().id, module, np.dtype(dtype).name, expr)


@functools.lru_cache(maxsize=None)
def _sm_count(device_id: int) -> int:
    return int(cupy.cuda.Device(device_id).attributes["MultiProcessorCount"])


def _grid(total: int) -> int:
    return max(1, min(-(-total // BLOCK), _MAX_GRID))


def _launch_elementwise(module: str, expr: str, total: int, args, dtype) -> None:
    if total > 0:
        _kernel(module, expr, dtype)((_grid(total),), (BLOCK,), args)


def _launch_planes(module: str, expr: str, nplanes: int, plane: int, args, dtype) -> None:
    """A per-plane kernel: gridDim.x steps over the planes, gridDim.y blocks share a plane; the
    block is one warp per 32 pixels up to BLOCK, so a 7x7 plane does not idle 200 threads.

    gridDim.y gives each thread about PLANE_PIXELS_PER_THREAD pixels of its plane (the plane's
    decode and filter load are then paid once per that many pixels), unless the grid would
    then hold fewer than PLANE_MIN_BLOCKS_PER_SM blocks per SM.
    """
    if plane >= 1 << 31:
        raise ValueError(f"{expr}: a plane of {plane} pixels does not fit the kernel's 32-bit pixel index")
    if nplanes > 0 and plane > 0:
        block = min(BLOCK, 32 * -(-plane // 32))
        sms = _sm_count(cupy.cuda.Device().id)
        wanted = -(-PLANE_MIN_BLOCKS_PER_SM * sms // nplanes)
        per_plane = min(max(-(-plane // (block * PLANE_PIXELS_PER_THREAD)), wanted), -(-plane // block))
        grid = (min(nplanes, (1 << 31) - 1), min(per_plane, 65535))
        _kernel(module, expr, dtype)(grid, (block,), args)


def _c(a):
    return cupy.ascontiguousarray(a)


def _geom_args(g: ConvGeometry):
    """(KH, KW, sh, sw, dh, dw, ph, pw) as int32, low paddings only (the sizes carry the rest)."""
    return tuple(_i32(v) for v in (g.kernel[0], g.kernel[1], g.stride[0], g.stride[1],
                                   g.dilation[0], g.dilation[1], g.padding[0][0], g.padding[1][0]))


def _shape_args(g: ConvGeometry):
    """(N, C, H, W, O, Ho, Wo) as int32."""
    return tuple(_i32(v) for v in (g.N, g.C_in, g.in_size[0], g.in_size[1], g.C_out,
                                   g.out_size[0], g.out_size[1]))


# ----------------------------------------------------------------------------- algorithm choice
def choose_algo(geom: ConvGeometry, op: str = "forward") -> str:
    """The rule behind ``algo='auto'`` on the GPU, for ``op`` ('forward', 'grad_input' or
    'grad_weight').

    direct for depthwise convolutions and tiny GEMMs (fewer than 4 output channels per group or
    a reduction shorter than 8: a GEMM tile would mostly idle); Winograd for dense 3x3 stride-1
    convolutions with at least WINOGRAD_MIN_CHANNELS channels in and out (on an H200: a1 0.45 ms
    against the implicit GEMM's 0.62, a3 0.28 against 0.67, but the 3 -> 64 stem a2 2.7 against
    1.1: with 3 input channels its GEMMs are all traffic); the implicit GEMM elsewhere (an RGB
    stem such as 3->64 3x3 still has a 27-long reduction and 64 rows: a GEMM). A pointwise 1x1
    convolution takes the implicit GEMM too: on an H200 its 64x64 tile ran anchor c in
    0.09 ms, cuBLAS's batched GEMM on the same arrays in 0.19 ms.
    Both gradients follow the forward's choice, except that Winograd's weight gradient is taken
    only from WINOGRAD_GRAD_WEIGHT_MIN_OUTPUTS weights per tap.
    """
    Cg, Og = geom.C_in // geom.groups, geom.C_out // geom.groups
    if Cg == 1 or Og < 4 or Cg * geom.kernel[0] * geom.kernel[1] < 8:
        return "direct"
    if geom.is_winograd_3x3 and min(geom.C_in, geom.C_out) >= WINOGRAD_MIN_CHANNELS:
        if op != "grad_weight" or geom.C_in * geom.C_out >= WINOGRAD_GRAD_WEIGHT_MIN_OUTPUTS:
            return "winograd"
    return "implicit_gemm"


def algos_for(geom: ConvGeometry, op: str) -> list:
    """What the autotuner times for ``op`` on ``geom``: every algorithm that applies (Winograd:
    dense 3x3 stride-1 convolutions, each pass)."""
    return [a for a in ALGOS if a != "winograd" or geom.is_winograd_3x3]


def timing_context() -> tuple:
    """What else a tuned choice depends on: the device."""
    return ("device", cupy.cuda.Device().id)


def synchronize() -> None:
    """Wait for the device (kernel launches return before the kernels finish)."""
    cupy.cuda.Device().synchronize()


# ----------------------------------------------------------------------------- implicit GEMM
def _plan_args(device_id: int, plan) -> tuple:
    """The plan's tables on the device, then its scalars as the kernel's int32 / int64."""
    scalars = tuple(np.int64(v) if n.endswith(":ll") else _i32(v)
                    for n, v in zip(src.IGEMM_SCALARS, plan.scalars))
    with cupy.cuda.Device(device_id):
        return (cupy.asarray(plan.ktab), cupy.asarray(plan.phases)) + scalars


@functools.lru_cache(maxsize=256)
def _igemm_launch(device_id: int, g: ConvGeometry, mode: str, dtype_name: str):
    """(kernel, grid, block, trailing arguments) of one implicit-GEMM call, memoized per device,
    geometry, mode and dtype: the plan's tables on the device, the tile, the int32/int64
    scalars. Building them on every call cost ~50 us of Python, a tenth of a3's whole GEMM on an
    H200 (the sweep's kernel alone ran 0.65 ms, the call 0.71 ms)."""
    plan = src.igemm_plan(g, mode)
    batches = g.groups * plan.nphase
    tile = src.igemm_tile(dtype_name, plan.M, plan.max_p, batches, _sm_count(device_id))
    bm, bn, _, tm, tn = src.IGEMM_TILES[dtype_name][tile]
    grid = (-(-plan.max_p // bn), -(-plan.M // bm), batches)
    kern = _function(device_id, "igemm", dtype_name, src.igemm_name(dtype_name, tile))
    return kern, grid, ((bm // tm) * (bn // tn),), _plan_args(device_id, plan)


def _igemm(inp, w, out, g: ConvGeometry, mode: str) -> None:
    kern, grid, block, rest = _igemm_launch(cupy.cuda.Device().id, g, mode, out.dtype.name)
    if grid[0] > 0:
        kern(grid, block, (inp, w, out) + rest)


@functools.lru_cache(maxsize=256)
def _wgrad_launch(device_id: int, g: ConvGeometry, dtype_name: str, tile: str = None, nsplit: int = None):
    """(kernel, grid, block, trailing arguments, nsplit) of the implicit-GEMM weight gradient.

    dw's GEMM (Og x Cg*KH*KW per group) has few tiles, its reduction (N*Ho*Wo) many steps: the
    reduction is cut into ``nsplit`` chunks of whole K steps, enough for WGRAD_BLOCKS_PER_SM
    blocks per SM, each chunk at least WGRAD_MIN_STEPS steps long, the partial tiles within
    WORKSPACE_BYTES. The tile is at most WGRAD_MAX_ROWS tall.
    ``tile`` and ``nsplit`` override the rule (``bench/gpu_sweep.py`` times the alternatives).
    """
    plan = src.igemm_plan(g, "forward")
    M, K, P = plan.M, int(plan.phases[0][1]), plan.max_p
    tile = tile or src.igemm_tile(dtype_name, min(M, WGRAD_MAX_ROWS))
    bm, bn, bk, tm, tn = src.IGEMM_TILES[dtype_name][tile]
    if nsplit is None:
        tiles = -(-M // bm) * -(-K // bn) * g.groups
        w_bytes = g.C_out * K * np.dtype(dtype_name).itemsize
        nsplit = max(1, min(-(-WGRAD_BLOCKS_PER_SM * _sm_count(device_id) // tiles),
                            -(-P // (WGRAD_MIN_STEPS * bk)), WORKSPACE_BYTES // max(w_bytes, 1)))
    per_split = -(-P // nsplit)
    chunk = max(1, -(-per_split // bk)) * bk          # whole K steps
    nsplit = max(1, -(-P // chunk))
    kern = _function(device_id, "igemm", dtype_name, src.igemm_name(dtype_name, tile, "igemm_wgrad"))
    grid = (-(-K // bn), -(-M // bm), g.groups * nsplit)
    extra = (_i32(nsplit), _i32(chunk), np.int64(g.C_out * K))
    return kern, grid, ((bm // tm) * (bn // tn),), _plan_args(device_id, plan) + extra, nsplit


# ----------------------------------------------------------------------------- Winograd
def _winograd_tiles(x, n0: int, b: int, th: int, tw: int, pad):
    """V (16, C, b*th*tw): the input transform of images n0..n0+b of x, low padding ``pad``."""
    _, C, H, W = x.shape
    V = cupy.empty((16, C, b * th * tw), x.dtype)
    _launch_elementwise("winograd", f"winograd_input<{src.ctype(x.dtype)}>", V[0].size,
                        (x[n0:n0 + b], V, _i32(b), _i32(C), _i32(H), _i32(W), _i32(th), _i32(tw),
                         _i32(pad[0]), _i32(pad[1])), x.dtype)
    return V


def _winograd_batch(N: int, th: int, tw: int, per_tile: int, itemsize: int) -> int:
    """Images per batch tile: ``per_tile`` workspace elements per 2x2 tile, under WORKSPACE_BYTES."""
    return max(1, min(N, WORKSPACE_BYTES // max(per_tile * th * tw * itemsize, 1)))


def _winograd(x, w, out, pad, transposed: bool) -> None:
    """out = the 3x3 stride-1 correlation of x with w at low padding ``pad`` (winograd.cu):
    the filter transform, then per batch tile (under WORKSPACE_BYTES) the input transform, one
    batched GEMM of 16 (O x C) @ (C x T) products, and the output transform. ``transposed``:
    w is (C, O, 3, 3) and is read flipped (the input gradient's filters)."""
    N, C = x.shape[:2]
    O, Ho, Wo = out.shape[1:]
    th, tw = -(-Ho // 2), -(-Wo // 2)
    t = src.ctype(x.dtype)
    U = cupy.empty((16, O, C), x.dtype)
    _launch_elementwise("winograd", f"winograd_weight<{t}>", O * C,
                        (w, U, _i32(O), _i32(C), _i32(int(transposed))), x.dtype)
    B = _winograd_batch(N, th, tw, 16 * (C + O), x.dtype.itemsize)
    for n0 in range(0, N, B):
        b = min(B, N - n0)
        M = cupy.matmul(U, _winograd_tiles(x, n0, b, th, tw, pad))
        _launch_elementwise("winograd", f"winograd_output<{t}>", M[0].size,
                            (M, out[n0:n0 + b], _i32(b), _i32(O), _i32(Ho), _i32(Wo), _i32(th), _i32(tw)),
                            x.dtype)


def _winograd_grad_weight(x, dy, dw, pad) -> None:
    """dw (O, C, 3, 3) of the 3x3 stride-1 convolution of x at low padding ``pad``, F(3x3, 2x2):
    per batch tile the input transform (the forward's V) and dy's tile transform Y, and the 16
    GEMMs Y[xi] @ V[xi]^T summed over the tiles in batch order (deterministic); then dw's
    output transform. CuPy's batched matmul makes V^T contiguous: one more copy of V."""
    N, C = x.shape[:2]
    O, Ho, Wo = dy.shape[1:]
    th, tw = -(-Ho // 2), -(-Wo // 2)
    t = src.ctype(x.dtype)
    B = _winograd_batch(N, th, tw, 16 * (2 * C + O), x.dtype.itemsize)
    M = None
    for n0 in range(0, N, B):
        b = min(B, N - n0)
        V = _winograd_tiles(x, n0, b, th, tw, pad)
        Y = cupy.empty((16, O, b * th * tw), x.dtype)
        _launch_elementwise("winograd", f"winograd_dy<{t}>", Y[0].size,
                            (dy[n0:n0 + b], Y, _i32(b), _i32(O), _i32(Ho), _i32(Wo), _i32(th), _i32(tw)), x.dtype)
        part = cupy.matmul(Y, cupy.swapaxes(V, 1, 2))            # (16, O, C)
        if M is None:
            M = part
        else:
            M += part
    _launch_elementwise("winograd", f"winograd_dw<{t}>", O * C, (M, dw, _i32(O), _i32(C)), x.dtype)


# ----------------------------------------------------------------------------- im2col helpers
def _batch_tile(g: ConvGeometry, itemsize: int) -> int:
    per_image = g.C_in * g.kernel[0] * g.kernel[1] * g.out_size[0] * g.out_size[1] * itemsize
    return max(1, min(g.N, WORKSPACE_BYTES // max(per_image, 1)))


def _columns(x, g: ConvGeometry, n0: int, B: int):
    """(B, G, Cg*KH*KW, Ho*Wo) columns of images n0..n0+B (a view of x when pointwise)."""
    G = g.groups
    Kg = (g.C_in // G) * g.kernel[0] * g.kernel[1]
    P = g.out_size[0] * g.out_size[1]
    if g.is_pointwise:
        return x[n0:n0 + B].reshape(B, G, Kg, P)
    cols = cupy.empty((B, G * Kg, P), x.dtype)
    args = (x[n0:n0 + B], cols, _i32(B), _i32(g.C_in), _i32(g.in_size[0]), _i32(g.in_size[1]),
            _i32(g.out_size[0]), _i32(g.out_size[1])) + _geom_args(g)
    _launch_planes("im2col", f"im2col_kernel<{src.ctype(x.dtype)}>", B * G * Kg, P, args, x.dtype)
    return cols.reshape(B, G, Kg, P)


def _depthwise(x, w, y, kernel, stride, dilation, pad) -> None:
    """conv2d_depthwise_fwd: x (N, C, H, W) and w (O, 1, KH, KW) -> y (N, O, Ho, Wo); ``pad`` is
    the pair of low paddings (negative ones crop)."""
    (N, C, H, W), (O, Ho, Wo) = x.shape, y.shape[1:]
    args = (x, w, y) + tuple(_i32(v) for v in (N, C, H, W, O, Ho, Wo, *kernel, *stride, *dilation, *pad))
    _launch_planes("conv", src.depthwise_name(x.dtype, *kernel), N * O, Ho * Wo, args, x.dtype)


def _wmat(w, g: ConvGeometry):
    return w.reshape(g.groups, g.C_out // g.groups, -1)


# ----------------------------------------------------------------------------- the contract
def conv_forward(x, w, g: ConvGeometry, algo: str, epilogue=None):
    """y = conv(x, w): (N, C_in, H, W), (C_out, C_in/groups, KH, KW) -> (N, C_out, Ho, Wo).

    ``epilogue`` (bias or None, lo, hi): y = clip(y + bias, lo, hi), as a pass after the kernel.
    """
    x, w = _c(x), _c(w)
    y = cupy.empty(g.y_shape, x.dtype)
    t = src.ctype(x.dtype)
    if algo == "direct":
        if g.C_in // g.groups == 1:
            _depthwise(x, w, y, g.kernel, g.stride, g.dilation, (g.padding[0][0], g.padding[1][0]))
        else:
            args = (x, w, y) + _shape_args(g) + _geom_args(g) + (_i32(g.groups),)
            _launch_elementwise("conv", f"conv2d_direct_fwd<{t}>", y.size, args, x.dtype)
    elif algo == "im2col":
        wm = _wmat(w, g)
        yv = y.reshape(g.N, g.groups, g.C_out // g.groups, -1)
        B = _batch_tile(g, x.dtype.itemsize)
        for n0 in range(0, g.N, B):
            b = min(B, g.N - n0)
            cupy.matmul(wm, _columns(x, g, n0, b), out=yv[n0:n0 + b])
    elif algo == "implicit_gemm":
        _igemm(x, w, y, g, "forward")
    elif algo == "winograd":
        check_winograd(g)
        _winograd(x, w, y, (g.padding[0][0], g.padding[1][0]), transposed=False)
    else:
        raise ValueError(f"algo must be one of {ALGOS} on the cuda backend, got {algo!r}")
    if epilogue is not None:
        bias_clip_(y, *epilogue)
    return y


def conv_grad_input(dy, w, g: ConvGeometry, algo: str):
    """dx = C^T dy, the transposed convolution: (N, C_out, Ho, Wo) -> (N, C_in, H, W)."""
    dy, w = _c(dy), _c(w)
    t = src.ctype(dy.dtype)
    if algo == "direct":
        dx = cupy.empty(g.x_shape, dy.dtype)
        if g.C_in == g.C_out == g.groups and g.stride == (1, 1):
            # depthwise, stride 1: dx is the depthwise correlation of dy with the flipped filters
            # over the padding (KH-1)*dh - ph (negative where the forward padding was larger)
            (kh, kw), (dh, dw) = g.kernel, g.dilation
            pad = ((kh - 1) * dh - g.padding[0][0], (kw - 1) * dw - g.padding[1][0])
            _depthwise(dy, _c(w[:, :, ::-1, ::-1]), dx, g.kernel, (1, 1), g.dilation, pad)
            return dx
        args = (dy, w, dx) + _shape_args(g) + _geom_args(g) + (_i32(g.groups),)
        _launch_elementwise("conv", f"conv2d_direct_bwd_input<{t}>", dx.size, args, dy.dtype)
        return dx
    if algo == "im2col":
        G = g.groups
        wt = cupy.swapaxes(_wmat(w, g), 1, 2)                 # (G, Kg, Og)
        dyv = dy.reshape(g.N, G, g.C_out // G, -1)
        if g.is_pointwise:
            return cupy.matmul(wt, dyv).reshape(g.x_shape)
        dx = cupy.empty(g.x_shape, dy.dtype)
        B = _batch_tile(g, dy.dtype.itemsize)
        for n0 in range(0, g.N, B):
            b = min(B, g.N - n0)
            cols = cupy.matmul(wt, dyv[n0:n0 + b])            # (b, G, Kg, P)
            args = (cols, dx[n0:n0 + b], _i32(b), _i32(g.C_in), _i32(g.in_size[0]), _i32(g.in_size[1]),
                    _i32(g.out_size[0]), _i32(g.out_size[1])) + _geom_args(g)
            _launch_elementwise("im2col", f"col2im_gather<{t}>", b * g.C_in * g.in_size[0] * g.in_size[1],
                                args, dy.dtype)
        return dx
    if algo == "implicit_gemm":
        dx = cupy.empty(g.x_shape, dy.dtype)
        _igemm(dy, w, dx, g, "grad_input")
        return dx
    if algo == "winograd":
        check_winograd(g)
        dx = cupy.empty(g.x_shape, dy.dtype)
        _winograd(dy, w, dx, (2 - g.padding[0][0], 2 - g.padding[1][0]), transposed=True)
        return dx
    raise ValueError(f"algo must be one of {ALGOS} on the cuda backend, got {algo!r}")


def conv_grad_weight(x, dy, g: ConvGeometry, algo: str):
    """dw[o, c', i, j] = sum_{n, yo, xo} dy[n, o, yo, xo] * x_pad[n, c, yo*sh + i*dh, xo*sw + j*dw]."""
    x, dy = _c(x), _c(dy)
    t = src.ctype(x.dtype)
    if algo == "direct":
        dw = cupy.empty(g.w_shape, x.dtype)
        args = (x, dy, dw) + _shape_args(g) + _geom_args(g) + (_i32(g.groups),)
        if dw.size:
            _kernel("conv", f"conv2d_direct_bwd_weight<{t}>", x.dtype)((dw.size,), (BLOCK,), args)
        return dw
    if algo == "winograd":
        check_winograd(g)
        dw = cupy.empty(g.w_shape, x.dtype)
        _winograd_grad_weight(x, dy, dw, (g.padding[0][0], g.padding[1][0]))
        return dw
    if algo == "implicit_gemm":
        kern, grid, block, rest, nsplit = _wgrad_launch(cupy.cuda.Device().id, g, x.dtype.name)
        ws = cupy.empty((nsplit,) + g.w_shape, x.dtype)
        kern(grid, block, (x, dy, ws) + rest)
        # the partial tiles summed in a fixed order: deterministic, unlike atomics
        return ws[0] if nsplit == 1 else ws.sum(axis=0)
    if algo != "im2col":
        raise ValueError(f"algo must be one of {ALGOS} on the cuda backend, got {algo!r}")
    G = g.groups
    Og = g.C_out // G
    dyv = dy.reshape(g.N, G, Og, -1)
    acc = cupy.zeros((G, Og, (g.C_in // G) * g.kernel[0] * g.kernel[1]), x.dtype)
    B = _batch_tile(g, x.dtype.itemsize)
    for n0 in range(0, g.N, B):
        b = min(B, g.N - n0)
        cols = _columns(x, g, n0, b)                          # (b, G, Kg, P)
        # per-image products summed in a fixed order: deterministic, unlike atomics
        acc += cupy.matmul(dyv[n0:n0 + b], cupy.swapaxes(cols, 2, 3)).sum(axis=0)
    return acc.reshape(g.w_shape)


# ----------------------------------------------------------------------------- pooling
# ``geom`` describes the window as a depthwise convolution, the one formula for sizes:
#     geom = conv_geometry(x.shape, (C, 1, kh, kw), stride, padding, dilation, groups=C)
# (kernel = window, padding = the implicit padding, which never wins a max).

def bias_clip_(y, bias, lo: float, hi: float) -> None:
    """In place on y (N, C, ...): add bias[c] (None: nothing) and clip to [lo, hi]."""
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * (y.ndim - 2))
    if lo != -float("inf") or hi != float("inf"):
        cupy.clip(y, lo, hi, out=y)


def clip_grad(g, y, lo: float, hi: float):
    """The gradient through y = clip(., lo, hi): g where lo < y < hi, else 0 (a new array)."""
    return cupy.where((y > lo) & (y < hi), g, 0).astype(g.dtype, copy=False)


def _pool_args(g: ConvGeometry):
    return (_i32(g.N * g.C_in), _i32(g.in_size[0]), _i32(g.in_size[1]), _i32(g.out_size[0]),
            _i32(g.out_size[1])) + _geom_args(g)


def max_pool2d_forward(x, geom: ConvGeometry):
    """Max pooling of x (N, C, H, W) -> (y (N, C, Ho, Wo), indices int32 (N, C, Ho, Wo)).

    ``indices`` holds the flat position ``yi * W + xi`` of each window's first maximum (PyTorch's
    convention and tie rule); a NaN in a window wins, as in PyTorch.
    """
    x = _c(x)
    y = cupy.empty(geom.y_shape, x.dtype)
    idx = cupy.empty(geom.y_shape, cupy.int32)
    _launch_elementwise("pool", f"max_pool2d_fwd<{src.ctype(x.dtype)}>", y.size,
                        (x, y, idx) + _pool_args(geom), x.dtype)
    return y, idx


def max_pool2d_backward(dy, indices, geom: ConvGeometry):
    """dx (N, C, H, W): each dy routed to its window's argmax (gather form, deterministic)."""
    dy, indices = _c(dy), _c(indices).astype(cupy.int32, copy=False)
    dx = cupy.empty(geom.x_shape, dy.dtype)
    _launch_elementwise("pool", f"max_pool2d_bwd<{src.ctype(dy.dtype)}>", dx.size,
                        (dy, indices, dx) + _pool_args(geom), dy.dtype)
    return dx


def avg_pool2d_forward(x, geom: ConvGeometry, count_include_pad: bool = True):
    """Average pooling of x (N, C, H, W) -> (N, C, Ho, Wo); the divisor is KH*KW with
    ``count_include_pad`` (PyTorch's default), else the taps inside the image."""
    x = _c(x)
    y = cupy.empty(geom.y_shape, x.dtype)
    _launch_elementwise("pool", f"avg_pool2d_fwd<{src.ctype(x.dtype)}>", y.size,
                        (x, y) + _pool_args(geom) + (_i32(bool(count_include_pad)),), x.dtype)
    return y


def avg_pool2d_backward(dy, geom: ConvGeometry, count_include_pad: bool = True):
    """dx (N, C, H, W) of average pooling: each dy spread evenly over its window (gather form)."""
    dy = _c(dy)
    dx = cupy.empty(geom.x_shape, dy.dtype)
    _launch_elementwise("pool", f"avg_pool2d_bwd<{src.ctype(dy.dtype)}>", dx.size,
                        (dy, dx) + _pool_args(geom) + (_i32(bool(count_include_pad)),), dy.dtype)
    return dx


def warm(dtypes=("float32", "float64")) -> None:
    """Compile (or load from CuPy's kernel cache) every module for the current device."""
    dev = cupy.cuda.Device().id
    for dtype in dtypes:
        for module in src.MODULES:
            for expr in src.name_expressions(module, dtype):
                _function(dev, module, dtype, expr)
