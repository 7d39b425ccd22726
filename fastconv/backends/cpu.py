"""CPU backend: adapts the Numba kernels and NumPy's BLAS to the backend contract.

The contract (the same for every backend; arrays are 4-D NCHW, C-contiguous, float32/float64,
and ``geom`` is a validated :class:`~fastconv.geometry.ConvGeometry`):

    conv_forward(x, w, geom, algo, epilogue=None) -> y   (N, C_out, Ho, Wo)
                                            epilogue: (bias or None, lo, hi): y = clip(y + bias, lo, hi)
    conv_grad_input(dy, w, geom, algo)  -> dx  (N, C_in, H, W)   == the transposed convolution
    conv_grad_weight(x, dy, geom, algo) -> dw  (C_out, C_in/groups, KH, KW)
    bias_clip_(y, bias, lo, hi)         -> None: y = clip(y + bias per channel, lo, hi), in place
    clip_grad(g, y, lo, hi)             -> g where lo < y < hi, else 0 (the gradient through the clip)
    choose_algo(geom, op='forward')     -> the algorithm ``auto`` runs by rule for op ('forward',
                                           'grad_input' or 'grad_weight')
    algos_for(geom, op), timing_context(), synchronize()   -> what ``fastconv.autotune`` times

Algorithms: ``'direct'`` (Numba loops; best for few channels and 1-D; a depthwise convolution
runs its own phase-plane kernel, ``kernels/cpu/depthwise.py``), ``'winograd'`` (F(4x4, 3x3),
``kernels/cpu/winograd.py``: dense 3x3 kernels at stride 1, forward and input gradient; the
weight gradient runs im2col), ``'fft'`` (``kernels/cpu/fft.py``: products of spectra, for long
kernels; any geometry) and ``'im2col'``: each Numba
thread unfolds cache-sized tiles of output rows and multiplies them with a single-threaded GEMM
(``kernels/cpu/gemm.py``, on fastconv's own ``kernels/cpu/microgemm.py``).
Some convolutions run on whole-image columns in a reused workspace instead: the input gradient
of a batch with fewer (image, group) pairs than twice the threads, whose column tiles would
overlap; a long reduction whose cache-sized tiles would be slivers of a few dozen pixels
(``MIN_TILE_COLUMNS``); and a short reduction with a large output (``SHORT_REDUCTION``).
Their products run on microgemm in Numba's threads when the reduction is short (``gemm.matmul``)
and as NumPy matmuls on BLAS's threads otherwise, as do their weight gradients. A pointwise 1x1
convolution is one batched NumPy matmul on the input as it lies, no copy.

A convolution of fewer than ``SERIAL_MACS`` (2^21) multiply-adds runs each kernel's serial twin
on the calling thread (``for_work``), in whole tiles: waking the workqueue threads costs 25-31 us
here, and splitting such a problem among threads cuts its GEMMs into slivers.
"""
from __future__ import annotations

import functools
import threading

import numba
import numpy as np

from fastconv.geometry import ConvGeometry, check_winograd
from fastconv.kernels.cpu import depthwise, direct, epilogue, fft, gemm, im2col as _im2col, winograd
from fastconv.kernels.cpu._common import for_work, runs_serially, serial_if

ALGOS = ("direct", "im2col", "winograd", "fft")
name = "cpu"
xp = np

#: Bytes the whole-image im2col workspace may take; the batch and then the output rows are tiled to fit.
WORKSPACE_BYTES = 32 * 1024 * 1024
#: Bytes of one thread's column tile in the tiled GEMM path (kept well inside a core's L2 cache).
TILE_BYTES = 512 * 1024
#: Below this reduction length (C_in/groups * kh * kw), with an output of 4 MiB or more per
#: image, whole-image columns and one parallel product beat the tiles. Measured with BLAS on
#: both paths: a2 (27 x 64 x 224^2) 4.0 -> 2.7 ms, while the Lite0 stem, with a 1.6 MiB output,
#: stays faster tiled (0.9 vs 1.2 ms); with microgemm on both, a2 still 2.23 vs 2.40 ms at 1
#: thread and 2.34 vs 2.55-3.57 at 2 (medians).
SHORT_REDUCTION = 64
BATCHED_OUTPUT_BYTES = 4 * 2**20
#: A column tile of fewer output pixels than this is a sliver: a long reduction (C_in/groups *
#: kh * kw in the thousands) leaves few columns in TILE_BYTES, and when the weight matrix does
#: not fit in cache beside the tile (more than TILE_BYTES), each sliver's GEMM streams it again
#: (the weight gradient: its whole partial sum) for little work. Such convolutions run on
#: whole-image columns instead (measured when their product was BLAS's; 3x3, 2 threads): N=1 at
#: 28x28, 512 channels 33.6 -> 19.9 ms forward, 22.1 -> 16.6 weight gradient; N=1 128 channels
#: at 14x14 forward 1.08 -> 0.52 ms; N=8 256 channels at 14x14, input gradient 16.5 -> 7.8 ms.
#: 64 channels at 28x28 (224-pixel tiles) stays faster tiled: 0.44 vs 0.54 ms; so do 16 -> 16
#: channels at 64x64 with 15x15 and 31x31 kernels (a weight matrix of 16 rows: 13.4 vs 14.6 and
#: 43 vs 74 ms), hence the rule also asks for SLIVER_MIN_ROWS output channels per group.
MIN_TILE_COLUMNS = 128
SLIVER_MIN_ROWS = 64
#: Tiles per Winograd task: every task's 36 GEMMs read all of the transformed filters U (36 x
#: C_in x C_out, 9.4 MB on a3) once, so fewer, larger tasks read it fewer times (a3, 2 threads:
#: tasks of 64 tiles 4.4-5.6 ms, of 28 tiles 5.2-6.7 ms); a1's 98-392 tiles ran alike.
WINOGRAD_TILES = 96
#: ``auto`` picks Winograd for 3x3 stride-1 kernels with at least this many input and output
#: channels: with fewer, the tile transforms and the short GEMM reductions outweigh the 4x fewer
#: multiplications (Winograd / im2col time, 2 threads, medians of alternating blocks, 92998d8:
#: 16 channels 0.94-1.69; 32 channels in two sessions' runs N=8 at 56 px 1.01 and 0.83, N=1 at
#: 56-224 px 0.73-1.28; 48 channels 0.52; 64 channels 0.51-0.64).
WINOGRAD_MIN_CHANNELS = 32
#: ... and at least this many 4x4 output tiles in the batch: with fewer, transforming the weights
#: (36 x C_out x C_in values, read again by every task) costs more than the multiplications saved.
#: Winograd / im2col, 2 threads, 8 alternating blocks (317b854): 49 tiles (N=1 at 28 px) 0.62,
#: 0.93, 0.98, 0.90 at 64, 128, 256, 512 channels; 36 tiles of 96 channels 0.85; 32 tiles of 256
#: 1.53; 25 tiles 1.14-1.48; 16 tiles of 512 1.53-2.7.
WINOGRAD_MIN_TILES = 48
#: The constants of ``fft_pays`` (ns, float32, 2 threads; fitted on 16 -> 16 channels at 64x64
#: with 7x7 .. 31x31 kernels, N = 1 and 8, against 3 -> 64 at 224x224 11x11 and 64 -> 64 at
#: 56x56 9x9, where im2col stays faster: bench/NOTES.md).
FFT_NS_PER_POINT = 5.0
KERNEL_NS_PER_CMAC = 0.065
SPECTRUM_NS_PER_BYTE = 0.25
GEMM_NS_PER_MAC = 0.04
#: Elementwise kernels wake Numba's threads (~30 us) only from this many elements on.
PARALLEL_ELEMENTS = 1 << 18
_X_TILE_1D = 4096
_local = threading.local()


def choose_algo(geom: ConvGeometry, op: str = "forward") -> str:
    """The rule behind ``algo='auto'``: direct where each output sums few products, Winograd
    for 3x3 stride-1 kernels on enough channels, FFT for large stride-1 kernels where its cost
    model says so (``fft_pays``), GEMM elsewhere. The same for every ``op`` (Winograd's weight
    gradient runs im2col)."""
    cg = geom.C_in // geom.groups
    kg = cg * geom.kernel[0] * geom.kernel[1]
    og = geom.C_out // geom.groups
    # a GEMM with a handful of rows is a matrix-vector product: no reuse for BLAS to exploit
    if geom.is_depthwise or kg < 16 or og < 4 or (geom.groups > 1 and cg < 4):
        return "direct"
    if (geom.is_winograd_3x3 and min(geom.C_in, geom.C_out) >= WINOGRAD_MIN_CHANNELS
            and geom.N * -(-geom.out_size[0] // 4) * -(-geom.out_size[1] // 4) >= WINOGRAD_MIN_TILES):
        return "winograd"
    if fft_pays(geom):
        return "fft"
    return "im2col"


@functools.lru_cache(maxsize=1024)   # runs on every 'auto' call: a network repeats its few geometries
def fft_pays(geom: ConvGeometry) -> bool:
    """``auto``'s cost model: whether the FFT path should beat im2col on this convolution.

    FFT: FFT_NS_PER_POINT per point of every transformed plane (N * (C_in + C_out) of them),
    KERNEL_NS_PER_CMAC per complex multiply-add of the kernels' DFT-matrix products, and
    SPECTRUM_NS_PER_BYTE per byte of kernel spectra streamed (written once, read once per
    image). im2col: GEMM_NS_PER_MAC per multiply-add, twice that with fewer than 32 output
    channels per group (a GEMM that thin runs OpenBLAS at about half speed). Only what
    ``fft_considered`` admits is weighed.
    """
    if not fft_considered(geom):
        return False
    kh, kw = geom.kernel
    Hf, Wf = fft.plane_shape(*geom.in_size, geom.padding)
    kernels = geom.C_out * (geom.C_in // geom.groups)
    spectrum_bytes = kernels * Hf * (Wf // 2 + 1) * 8                                    # complex64
    fft_ns = (FFT_NS_PER_POINT * Hf * Wf * geom.N * (geom.C_in + geom.C_out)
              + KERNEL_NS_PER_CMAC * kernels * kh * (Wf // 2 + 1) * (kw + Hf)
              + SPECTRUM_NS_PER_BYTE * spectrum_bytes * (geom.N + 2))
    gemm_ns = GEMM_NS_PER_MAC * geom.macs * (2 if geom.C_out // geom.groups < 32 else 1)
    return fft_ns < gemm_ns


def fft_considered(geom: ConvGeometry) -> bool:
    """Where the FFT may pay: stride 1 and kernels of 5x5 and more (elsewhere it is slow by
    construction; ``algo='fft'`` still computes any geometry)."""
    return geom.stride == (1, 1) and geom.kernel[0] * geom.kernel[1] >= 25


def algos_for(geom: ConvGeometry, op: str) -> list:
    """What the autotuner times for ``op`` ('forward', 'grad_input', 'grad_weight') on ``geom``:
    every algorithm that covers it (Winograd's weight gradient is im2col's: not timed twice)."""
    return [a for a in ALGOS if a != "winograd" or (geom.is_winograd_3x3 and op != "grad_weight")]


def timing_context() -> tuple:
    """What else a tuned choice depends on: the thread count."""
    return ("threads", numba.get_num_threads())


def synchronize() -> None:
    """CPU calls return when done: nothing to wait for (the CUDA backend waits for the device)."""


def _tile_rows(g: ConvGeometry, dtype, tasks_per_row_tile: int) -> int:
    """Output rows per tile: fit TILE_BYTES, but leave at least two tiles per thread when the
    kernel runs in parallel. A serial run (see ``_common.for_work``) takes whole tiles: every
    tile costs a GEMM call and the setup of its Cg*KH*KW column rows. The tiles of an image are
    then evened out (28 rows in tiles of 9 would leave a last tile of one row: 7, 7, 7, 7)."""
    Ho, Wo = g.out_size
    kg = (g.C_in // g.groups) * g.kernel[0] * g.kernel[1]
    rows = max(1, TILE_BYTES // (kg * Wo * np.dtype(dtype).itemsize))
    if not runs_serially(g.macs):
        want_tiles = 2 * numba.get_num_threads()
        if tasks_per_row_tile * -(-Ho // rows) < want_tiles:
            # split for the threads, but not into more tiles than MIN_TILE_COLUMNS pixels allow
            rows = min(rows, max(1, Ho * tasks_per_row_tile // want_tiles, -(-MIN_TILE_COLUMNS // Wo)))
    tiles = -(-Ho // min(rows, Ho))
    return -(-Ho // tiles)


def _chunks(g: ConvGeometry, ntasks: int) -> int:
    """Contiguous runs of tiles for the tiled kernels: one per thread, one for a serial run."""
    return 1 if runs_serially(g.macs) else min(numba.get_num_threads(), ntasks)


def _sliver_tiles(g: ConvGeometry, dtype) -> bool:
    """Whether the tiled kernels' column tiles would be slivers of fewer than MIN_TILE_COLUMNS
    pixels while the weight matrix they multiply, of at least SLIVER_MIN_ROWS rows, exceeds
    TILE_BYTES.

    Problems small enough for the serial twins stay tiled: the whole-image path wakes threads.
    """
    og = g.C_out // g.groups
    weight_bytes = g.C_out * (g.C_in // g.groups) * g.kernel[0] * g.kernel[1] * np.dtype(dtype).itemsize
    return (not runs_serially(g.macs) and og >= SLIVER_MIN_ROWS and weight_bytes > TILE_BYTES
            and _tile_rows(g, dtype, g.N * g.groups) * g.out_size[1] < MIN_TILE_COLUMNS)


def _workspace(n_items: int, dtype, name: str = "columns") -> np.ndarray:
    """A flat buffer of at least n_items, reused across calls (fresh pages cost ~3 us each here)."""
    key = (name, np.dtype(dtype).str)
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(key)
    if buf is None or buf.size < n_items:
        buf = bufs[key] = np.empty(n_items, dtype)
    return buf[:n_items]


def release_workspace() -> None:
    """Free this thread's im2col workspace."""
    _local.bufs = {}


def _geom_ints(g: ConvGeometry):
    return (g.stride[0], g.stride[1], g.dilation[0], g.dilation[1],
            g.padding[0][0], g.padding[1][0])


def _tiles(g: ConvGeometry, dtype):
    """Yield (n0, B, y0, y1): image and output-row tiles whose columns fit the workspace."""
    Ho, Wo = g.out_size
    row_items = g.C_in * g.kernel[0] * g.kernel[1] * Wo
    itemsize = np.dtype(dtype).itemsize
    rows_fit = max(1, WORKSPACE_BYTES // (row_items * itemsize))
    if rows_fit >= Ho:
        B = max(1, min(g.N, rows_fit // Ho))
        for n0 in range(0, g.N, B):
            yield n0, min(B, g.N - n0), 0, Ho
    else:
        for n0 in range(g.N):
            for y0 in range(0, Ho, rows_fit):
                yield n0, 1, y0, min(Ho, y0 + rows_fit)


def _wmat(w, g: ConvGeometry):
    return w.reshape(g.groups, g.C_out // g.groups, -1)


def _pointwise(x, wm, out_shape):
    """A 1x1 convolution is one batched matmul on the input as it lies: (G, Og, Cg) @ (N, G, Cg, P).

    Here the multi-threaded BLAS beats any tiling of ours (no copy at all, one call): measured
    2-5x faster than the tiled kernel on EfficientNet-Lite0's 7x7 .. 112x112 pointwise layers.
    """
    N, G = out_shape[0], wm.shape[0]
    y = np.matmul(wm, x.reshape(N, G, wm.shape[2], -1))
    return y.reshape(out_shape)


def _matmul_tasks(planes: int) -> int:
    """Tasks per (image, group) plane of ``gemm.matmul``: at least two per thread in all."""
    return -(-2 * numba.get_num_threads() // planes)


def _product(a, b, nb0: int, jb0: int, c, nc0: int, jc0: int, B: int, P: int, macs: int) -> None:
    """c[nc0:nc0+B, :, :, jc0:jc0+P] = a @ b[nb0:nb0+B, :, :, jb0:jb0+P]: the whole-image paths'
    product, ``a`` (G, M, K) C-contiguous.

    A short reduction (K <= SHORT_REDUCTION: a2's K = 27, the input gradient of few channels)
    runs on microgemm in Numba's threads (``gemm.matmul``); a long one on BLAS's threads, whose
    blocking keeps a large C in cache (microgemm measured 1.0-1.3x slower there, NOTES.md).
    """
    if a.shape[2] <= SHORT_REDUCTION:
        for_work(gemm.matmul, macs)(a, b, nb0, jb0, c, nc0, jc0, B, P, _matmul_tasks(B * a.shape[0]))
    else:
        dst = c[nc0:nc0 + B, :, :, jc0:jc0 + P]
        res = np.matmul(a, b[nb0:nb0 + B, :, :, jb0:jb0 + P], out=dst if dst.flags.c_contiguous else None)
        if res is not dst:          # a band of rows in every plane: not one contiguous block
            dst[...] = res


def _batched_forward(x, wm, g: ConvGeometry):
    """Whole-image columns in the reused workspace, then one parallel ``gemm.matmul`` per batch tile.

    For a short reduction on a large image (few input channels, e.g. an RGB stem at full
    resolution) the GEMM is bound by writing its output, not by arithmetic (see SHORT_REDUCTION);
    for a long one, tiles would be slivers (see MIN_TILE_COLUMNS).
    """
    y = np.empty(g.y_shape, x.dtype)
    G, Wo = g.groups, g.out_size[1]
    Kg = (g.C_in // G) * g.kernel[0] * g.kernel[1]
    yv = y.reshape(g.N, G, g.C_out // G, -1)
    wmc = np.ascontiguousarray(wm)
    sh, sw, dh, dw, ph, pw = _geom_ints(g)
    for n0, B, y0, y1 in _tiles(g, x.dtype):
        P = (y1 - y0) * Wo
        cols = _workspace(B * G * Kg * P, x.dtype).reshape(B, G * Kg, P)
        _im2col.im2col(x, cols, n0, y0, y1, g.kernel[0], g.kernel[1], sh, sw, dh, dw, ph, pw, Wo)
        _product(wmc, cols.reshape(B, G, Kg, P), 0, 0, yv, n0, y0 * Wo, B, P, g.macs)
    return y


def _batched_grad_input(dy, wt, g: ConvGeometry):
    """dx = col2im(wt @ dy) on whole-image columns: one parallel ``gemm.matmul`` per batch tile,
    then a fold parallel over (image, channel) planes. ``wt`` is (G, Kg, Og), C-contiguous."""
    dx = np.zeros(g.x_shape, dy.dtype)
    G, Kg, Wo = g.groups, wt.shape[1], g.out_size[1]
    sh, sw, dh, dw, ph, pw = _geom_ints(g)
    dyv = dy.reshape(g.N, G, g.C_out // G, -1)
    for n0, B, y0, y1 in _tiles(g, dy.dtype):
        P = (y1 - y0) * Wo
        cols = _workspace(B * G * Kg * P, dy.dtype).reshape(B, G, Kg, P)
        _product(wt, dyv, n0, y0 * Wo, cols, 0, 0, B, P, g.macs)
        for_work(_im2col.col2im, g.macs)(cols.reshape(B, G * Kg, P), dx, n0, y0, y1,
                                         g.kernel[0], g.kernel[1], sh, sw, dh, dw, ph, pw, Wo)
    return dx


def _batched_grad_weight(x, dy, g: ConvGeometry):
    """dw = sum over images of dy @ columns^T on whole-image columns (multi-threaded matmuls)."""
    G, Wo = g.groups, g.out_size[1]
    Kg = (g.C_in // G) * g.kernel[0] * g.kernel[1]
    acc = np.zeros((G, g.C_out // G, Kg), x.dtype)
    prod = np.empty_like(acc)
    sh, sw, dh, dw, ph, pw = _geom_ints(g)
    dyv = dy.reshape(g.N, G, g.C_out // G, -1)
    for n0, B, y0, y1 in _tiles(g, x.dtype):
        P = (y1 - y0) * Wo
        cols = _workspace(B * G * Kg * P, x.dtype).reshape(B, G, Kg, P)
        _im2col.im2col(x, cols.reshape(B, G * Kg, P), n0, y0, y1, g.kernel[0], g.kernel[1],
                       sh, sw, dh, dw, ph, pw, Wo)
        for b in range(B):
            np.matmul(dyv[n0 + b, :, :, y0 * Wo:y1 * Wo], cols[b].transpose(0, 2, 1), out=prod)
            acc += prod
    return acc.reshape(g.w_shape)


def _tiled_forward(x, wm, g: ConvGeometry, ep):
    """y = wm[g] @ columns(x), tile by tile on every Numba thread (``kernels/cpu/gemm.py``)."""
    y = np.empty(g.y_shape, x.dtype)
    rows = _tile_rows(g, x.dtype, g.N * g.groups)
    nchunks = _chunks(g, g.N * g.groups * -(-g.out_size[0] // rows))
    for_work(gemm.conv_forward, g.macs)(x, np.ascontiguousarray(wm), y, *ep, rows, nchunks,
                                        g.kernel[0], g.kernel[1], *_geom_ints(g))
    return y


def _winograd(x, w, out_shape, pad_h: int, pad_w: int, ep, transposed: bool = False):
    """Winograd F(4x4, 3x3): y (out_shape) = x (*) f with low paddings pad_h, pad_w (may be < 0),
    f = w, or w's flipped transpose when ``transposed`` (the input gradient's filters).

    Tasks are runs of tile rows (4 output rows of one image) of about WINOGRAD_TILES tiles, as
    many for every thread (see ``WINOGRAD_TILES``).
    """
    N, C = x.shape[:2]
    Co, (Ho, Wo) = out_shape[1], out_shape[2:]
    lanes = winograd.LANE_BYTES // x.itemsize
    u = _workspace(36 * C * -(-Co // lanes) * lanes, x.dtype, "winograd").reshape(36, C, -1)
    winograd.transform_weights(w, u, transposed)
    nty, ntx = -(-Ho // winograd.M), -(-Wo // winograd.M)
    rows, threads = N * nty, numba.get_num_threads()
    band = min(-(-WINOGRAD_TILES // ntx), -(-rows // threads))
    ntasks = -(-rows // band)
    ntasks = -(-ntasks // threads) * threads                  # the same number of tasks per thread
    band = -(-rows // ntasks)
    nchunks = min(threads, -(-rows // band))
    y = np.empty(out_shape, x.dtype)
    winograd.conv_forward(x, u, y, *ep, band, nchunks, pad_h, pad_w)
    return y


def _fft_args(g: ConvGeometry):
    """The geometry as ``kernels/cpu/fft.py`` takes it, and its FFT worker threads."""
    return g.padding, g.stride, g.dilation, g.groups, numba.get_num_threads()


def _depthwise_chunks(g: ConvGeometry) -> int:
    """Runs of input planes per depthwise call: four per thread (buffers allocated once per run)."""
    return min(g.N * g.C_in, 4 * numba.get_num_threads())


def _kernel_epilogue(epilogue, dtype, channels: int):
    """(bias array, lo, hi) in the kernels' dtype; no epilogue = zero bias, no clipping."""
    bias, lo, hi = epilogue if epilogue is not None else (None, -np.inf, np.inf)
    t = np.dtype(dtype).type
    return (bias if bias is not None else np.zeros(channels, dtype)), t(lo), t(hi)


def conv_forward(x, w, g: ConvGeometry, algo: str, epilogue=None):
    """The convolution; ``epilogue`` (bias or None, lo, hi) is fused into the Winograd, depthwise
    and tiled GEMM kernels (applied while each output tile is in cache), a pass after the others."""
    ep = _kernel_epilogue(epilogue, x.dtype, g.C_out)
    if algo == "winograd":
        check_winograd(g)
        return _winograd(x, w, g.y_shape, g.padding[0][0], g.padding[1][0], ep)
    if algo == "direct" and g.is_depthwise:
        y = np.empty(g.y_shape, x.dtype)
        for_work(depthwise.conv_forward, g.macs)(x, w, y, *ep, _depthwise_chunks(g), *_geom_ints(g))
        return y
    kg = (g.C_in // g.groups) * g.kernel[0] * g.kernel[1]
    if algo == "fft":
        y = np.empty(g.y_shape, x.dtype)
        fft.conv_forward(x, w, y, *_fft_args(g))
    elif algo == "direct":
        y = np.empty(g.y_shape, x.dtype)
        xtile = _X_TILE_1D if g.N * g.C_out < 4 else max(1, g.out_size[1])
        for_work(direct.conv_forward, g.macs)(x, w, y, *_geom_ints(g), g.groups, xtile)
    elif g.is_pointwise:
        y = _pointwise(x, _wmat(w, g), g.y_shape)
    elif ((kg < SHORT_REDUCTION and g.C_out * g.out_size[0] * g.out_size[1] * x.itemsize >= BATCHED_OUTPUT_BYTES)
          or _sliver_tiles(g, x.dtype)):
        y = _batched_forward(x, _wmat(w, g), g)
    else:
        return _tiled_forward(x, _wmat(w, g), g, ep)
    if epilogue is not None:
        bias_clip_(y, *epilogue)
    return y


def conv_grad_input(dy, w, g: ConvGeometry, algo: str):
    if algo == "fft":
        dx = np.empty(g.x_shape, dy.dtype)
        fft.conv_grad_input(dy, w, dx, *_fft_args(g))
        return dx
    if algo == "direct" and g.is_depthwise:
        dx = np.empty(g.x_shape, dy.dtype)
        for_work(depthwise.conv_grad_input, g.macs)(dy, w, dx, _depthwise_chunks(g), *_geom_ints(g))
        return dx
    if algo == "direct":
        dx = np.empty(g.x_shape, dy.dtype)
        for_work(direct.conv_grad_input, g.macs)(dy, w, dx, *_geom_ints(g), g.groups)
        return dx
    if algo == "winograd":
        # the input gradient of a 3x3 stride-1 convolution is one too: flipped, transposed
        # weights and low padding 2 - p
        check_winograd(g)
        return _winograd(dy, w, g.x_shape, 2 - g.padding[0][0], 2 - g.padding[1][0],
                         _kernel_epilogue(None, dy.dtype, g.C_in), transposed=True)
    G = g.groups
    wt = np.swapaxes(_wmat(w, g), 1, 2)                       # (G, Kg, Og)
    if g.is_pointwise:
        return _pointwise(dy, wt, g.x_shape)                  # BLAS takes the transposed view
    wt = np.ascontiguousarray(wt)                             # the Numba kernels' one signature
    # too few (image, group) pairs to share out, or sliver tiles: whole-image columns
    if g.N * G < 2 * numba.get_num_threads() or _sliver_tiles(g, dy.dtype):
        return _batched_grad_input(dy, wt, g)
    dx = np.zeros(g.x_shape, dy.dtype)
    rows = _tile_rows(g, dy.dtype, g.N * G)
    for_work(gemm.conv_grad_input, g.macs)(dy, wt, dx, rows,
                                           g.kernel[0], g.kernel[1], *_geom_ints(g))
    return dx


def conv_grad_weight(x, dy, g: ConvGeometry, algo: str):
    if algo == "fft":
        dwt = np.empty(g.w_shape, x.dtype)
        fft.conv_grad_weight(x, dy, dwt, *_fft_args(g))
        return dwt
    if algo == "direct" and g.is_depthwise:
        dwt = np.empty(g.w_shape, x.dtype)
        for_work(depthwise.conv_grad_weight, g.macs)(x, dy, dwt, *_geom_ints(g))
        return dwt
    if algo == "winograd":
        check_winograd(g)          # the weight gradient itself runs im2col
    if algo == "direct":
        dwt = np.empty(g.w_shape, x.dtype)
        for_work(direct.conv_grad_weight, g.macs)(x, dy, dwt, *_geom_ints(g), g.groups)
        return dwt
    G = g.groups
    if g.N * G < 2 * numba.get_num_threads() and _sliver_tiles(g, x.dtype):
        return _batched_grad_weight(x, dy, g)
    Kg = (g.C_in // G) * g.kernel[0] * g.kernel[1]
    rows = _tile_rows(g, x.dtype, g.N * G)
    nchunks = _chunks(g, g.N * G * -(-g.out_size[0] // rows))
    partial = np.zeros((nchunks, G, Kg, g.C_out // G), x.dtype)
    for_work(gemm.conv_grad_weight, g.macs)(x, dy, partial, rows, g.kernel[0], g.kernel[1], *_geom_ints(g))
    return np.ascontiguousarray(partial.sum(axis=0).transpose(0, 2, 1)).reshape(g.w_shape)


def bias_clip_(y, bias, lo: float, hi: float) -> None:
    """In place on y (N, C, ...): add bias[c] (None: nothing) and clip to [lo, hi], in one pass."""
    N, C = y.shape[:2]
    b = bias if bias is not None else np.zeros(C, y.dtype)
    kernel = serial_if(epilogue.bias_clip, y.size < PARALLEL_ELEMENTS)
    kernel(y.reshape(N, C, -1), b, y.dtype.type(lo), y.dtype.type(hi))


def clip_grad(g, y, lo: float, hi: float):
    """The gradient through y = clip(., lo, hi): g where lo < y < hi, else 0 (a new array)."""
    out = np.empty(g.shape, g.dtype)
    t = g.dtype.type
    kernel = serial_if(epilogue.clip_grad, g.size < PARALLEL_ELEMENTS)
    kernel(np.ascontiguousarray(g).reshape(-1), np.ascontiguousarray(y, g.dtype).reshape(-1),
           t(lo), t(hi), out.reshape(-1))
    return out


def warm() -> None:
    """Compile (or load from Numba's cache) every CPU kernel for float32 and float64."""
    for dtype in (np.float32, np.float64):
        direct.warm(dtype)
        depthwise.warm(dtype)
        _im2col.warm(dtype)
        gemm.warm(dtype)
        winograd.warm(dtype)
        fft.warm(dtype)
        epilogue.warm(dtype)
