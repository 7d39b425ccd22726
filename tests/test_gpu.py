"""GPU (CuPy) results against the CPU engine: every algorithm, forward and every gradient.

Skipped without CuPy or a CUDA device. Each case runs the same public call on NumPy arrays
(CPU engine, float64: the oracle) and on CuPy arrays with every CUDA algorithm, in float32
(max-norm relative error < 1e-5) and float64 (< 1e-11), over a grid of stride, padding
(ints, 'same', asymmetric pairs), dilation, groups (incl. depthwise), output_padding and bias.
Run on a GPU machine with ``bench/gpu_check.sh`` (or ``pytest -m gpu tests/test_gpu.py``).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
cp = pytest.importorskip("cupy")
try:
    _NDEV = cp.cuda.runtime.getDeviceCount()
except Exception:  # no driver / no device
    _NDEV = 0
if _NDEV < 1:
    pytest.skip("no CUDA device", allow_module_level=True)

import fastconv  # noqa: E402
from fastconv import grad  # noqa: E402
from fastconv.backends import cuda as cuda_backend, get_backend  # noqa: E402

ALGOS = cuda_backend.ALGOS
#: the algorithms that take every geometry; Winograd (dense 3x3, stride 1) where it applies
GENERAL = tuple(a for a in ALGOS if a != "winograd")


def _winograd_applies(k, stride, dilation, groups) -> bool:
    return tuple(k) == (3, 3) and stride in (1, (1, 1)) and dilation in (1, (1, 1)) and groups == 1
TOL = {"float32": 1e-5, "float64": 1e-11}


def rel_err(got, ref) -> float:
    got = cp.asnumpy(got).astype(np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = max(np.abs(ref).max(), 1e-30)
    return float(np.abs(got - ref).max() / scale)


def check(got, ref, dtype, what):
    err = rel_err(got, ref)
    assert err < TOL[dtype], f"{what}: relative error {err:.3g} >= {TOL[dtype]:g}"


def _rand(rng, shape):
    return rng.standard_normal(shape)


# ----------------------------------------------------------------------------- conv2d grid
CONV2D_CASES = [
    dict(C_in=c_in, C_out=c_out, k=k, stride=s, padding=p, dilation=d, groups=gr)
    for (c_in, c_out, gr), k, s, p, d in itertools.product(
        [(4, 6, 1), (8, 12, 2), (6, 6, 6), (4, 8, 4), (3, 16, 1)],
        [(3, 3), (2, 4)],
        [1, 2, (2, 1)],
        [0, 1, "same", ((1, 0), (2, 1))],
        [1, 2],
    )
]


def _id(c):
    return "ci{C_in}-co{C_out}-k{k[0]}x{k[1]}-s{stride}-p{padding}-d{dilation}-g{groups}".format(**c).replace(" ", "")


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case,algo", [
    (c, a) for c in CONV2D_CASES for a in ALGOS
    if a != "winograd" or _winograd_applies(c["k"], c["stride"], c["dilation"], c["groups"])],
    ids=lambda v: v if isinstance(v, str) else _id(v))
def test_conv2d_and_grads_match_cpu(case, algo, dtype, rng):
    c = case
    x = _rand(rng, (2, c["C_in"], 9, 11))
    w = _rand(rng, (c["C_out"], c["C_in"] // c["groups"]) + c["k"])
    b = _rand(rng, (c["C_out"],))
    kw = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    y_ref = fastconv.conv2d(x, w, b, **kw)
    gy = _rand(rng, y_ref.shape)
    dx_ref = grad.conv2d_input(x.shape, w, gy, **kw)
    dw_ref = grad.conv2d_weight(x, w.shape, gy, **kw)

    X, Wt, B, GY = (cp.asarray(a.astype(dtype)) for a in (x, w, b, gy))
    check(fastconv.conv2d(X, Wt, B, algo=algo, **kw), y_ref, dtype, "forward")
    check(grad.conv2d_input(x.shape, Wt, GY, algo=algo, **kw), dx_ref, dtype, "grad input")
    check(grad.conv2d_weight(X, w.shape, GY, algo=algo, **kw), dw_ref, dtype, "grad weight")
    check(grad.bias(GY), gy.sum(axis=(0, 2, 3)), dtype, "grad bias")


# ----------------------------------------------------------------------------- implicit-GEMM tiles
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_implicit_gemm_tile_matches_cpu(dtype, stride, rng, monkeypatch):
    """Each tile of IGEMM_TILES, forced, on GEMMs taller than the tallest tile (M = 136 rows:
    a partial block along M and along the pixels): the forward of 5 -> 136 channels and the
    input gradient of 136 -> 5 (stride 2: four phases)."""
    from fastconv.backends import _cuda_src as src
    kw = dict(stride=stride, padding=1)
    x, w = _rand(rng, (2, 5, 9, 11)), _rand(rng, (136, 5, 3, 3))
    y_ref = fastconv.conv2d(x, w, **kw)
    x2_shape, w2 = (2, 136, 9, 11), _rand(rng, (5, 136, 3, 3))
    gy = _rand(rng, fastconv.output_shape(x2_shape, w2.shape, **kw))
    dx_ref = grad.conv2d_input(x2_shape, w2, gy, **kw)
    X, Wt, W2, GY = (cp.asarray(a.astype(dtype)) for a in (x, w, w2, gy))
    gy1 = _rand(rng, y_ref.shape)
    dw_ref = grad.conv2d_weight(x, w.shape, gy1, **kw)
    GY1 = cp.asarray(gy1.astype(dtype))
    for tile in src.IGEMM_TILES[dtype]:
        monkeypatch.setattr(src, "igemm_tile", lambda *a, _t=tile, **k: _t)
        _clear_igemm_launches()  # the launches (tile included) are memoized
        check(fastconv.conv2d(X, Wt, algo="implicit_gemm", **kw), y_ref, dtype, f"forward, tile {tile}")
        check(grad.conv2d_input(x2_shape, W2, GY, algo="implicit_gemm", **kw), dx_ref, dtype,
              f"grad input, tile {tile}")
        check(grad.conv2d_weight(X, w.shape, GY1, algo="implicit_gemm", **kw), dw_ref, dtype,
              f"grad weight, tile {tile}")
    _clear_igemm_launches()  # later tests get the tiles igemm_tile picks


def _clear_igemm_launches():
    cuda_backend._igemm_launch.cache_clear()
    cuda_backend._wgrad_launch.cache_clear()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride,dilation,groups", [(1, 1, 1), (2, 2, 2)])
def test_implicit_gemm_weight_gradient_split_over_pixels(dtype, stride, dilation, groups, rng, monkeypatch):
    """The weight gradient's reduction (3 x 20 x 21 pixels at stride 1) cut into chunks of one K
    step, the last one partial; the partial tiles must add up to the CPU's gradient."""
    kw = dict(stride=stride, padding=1, dilation=dilation, groups=groups)
    x, w_shape = _rand(rng, (3, 4, 20, 21)), (6, 4 // groups, 3, 3)
    gy = _rand(rng, fastconv.output_shape(x.shape, w_shape, **kw))
    dw_ref = grad.conv2d_weight(x, w_shape, gy, **kw)
    monkeypatch.setattr(cuda_backend, "WGRAD_BLOCKS_PER_SM", 1000)
    monkeypatch.setattr(cuda_backend, "WGRAD_MIN_STEPS", 1)
    _clear_igemm_launches()
    g = fastconv.conv_geometry(x.shape, w_shape, **kw)
    nsplit = cuda_backend._wgrad_launch(cp.cuda.Device().id, g, dtype)[-1]
    assert nsplit > 1, nsplit
    got = grad.conv2d_weight(cp.asarray(x.astype(dtype)), w_shape, cp.asarray(gy.astype(dtype)),
                             algo="implicit_gemm", **kw)
    check(got, dw_ref, dtype, f"grad weight in {nsplit} chunks")
    _clear_igemm_launches()


# ----------------------------------------------------------------------------- per-plane kernels
@pytest.mark.parametrize("pixels_per_thread", [1, 3, 64])
@pytest.mark.parametrize("stride", [1, 2])
def test_per_plane_kernels_cover_every_pixel(pixels_per_thread, stride, rng, monkeypatch):
    """im2col and the depthwise kernels on 23 x 29 planes (667 pixels: more than one block of
    256 threads) with each thread taking 1, 3 or 64 pixels of its plane and the grid-filling
    floor off, so that a thread's pixel loop runs 1, 2 and 3 times with a partial last pass."""
    monkeypatch.setattr(cuda_backend, "PLANE_PIXELS_PER_THREAD", pixels_per_thread)
    monkeypatch.setattr(cuda_backend, "PLANE_MIN_BLOCKS_PER_SM", 0)
    for c_in, c_out, groups, algo in [(3, 4, 1, "im2col"), (4, 4, 4, "direct"), (3, 6, 3, "direct")]:
        kw = dict(stride=stride, padding=1, groups=groups)
        x, w = _rand(rng, (2, c_in, 23, 29)), _rand(rng, (c_out, c_in // groups, 3, 3))
        y_ref = fastconv.conv2d(x, w, **kw)
        gy = _rand(rng, y_ref.shape)
        X, Wt, GY = (cp.asarray(a.astype("float64")) for a in (x, w, gy))
        what = f"{algo}, groups {groups}, {pixels_per_thread} px per thread"
        check(fastconv.conv2d(X, Wt, algo=algo, **kw), y_ref, "float64", f"forward, {what}")
        check(grad.conv2d_input(x.shape, Wt, GY, algo=algo, **kw), grad.conv2d_input(x.shape, w, gy, **kw),
              "float64", f"grad input, {what}")
        check(grad.conv2d_weight(X, w.shape, GY, algo=algo, **kw), grad.conv2d_weight(x, w.shape, gy, **kw),
              "float64", f"grad weight, {what}")


# ----------------------------------------------------------------------------- conv1d
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("algo", GENERAL)
@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 3, 1, 1), (1, "same", 2, 2), (3, [(2, 0)], 1, 4), (2, "same", 3, 1),
])
def test_conv1d_and_grads_match_cpu(stride, padding, dilation, groups, algo, dtype, rng):
    x = _rand(rng, (3, 8, 37))
    w = _rand(rng, (12, 8 // groups, 5))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y_ref = fastconv.conv1d(x, w, **kw)
    gy = _rand(rng, y_ref.shape)
    X, Wt, GY = (cp.asarray(a.astype(dtype)) for a in (x, w, gy))
    check(fastconv.conv1d(X, Wt, algo=algo, **kw), y_ref, dtype, "forward")
    check(grad.conv1d_input(x.shape, Wt, GY, algo=algo, **kw), grad.conv1d_input(x.shape, w, gy, **kw),
          dtype, "grad input")
    check(grad.conv1d_weight(X, w.shape, GY, algo=algo, **kw), grad.conv1d_weight(x, w.shape, gy, **kw),
          dtype, "grad weight")


# ----------------------------------------------------------------------------- transposed
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("algo", GENERAL)
@pytest.mark.parametrize("k,stride,padding,output_padding,dilation,groups", [
    ((4, 4), 2, 1, 0, 1, 1), ((3, 3), 2, 1, 1, 1, 1), ((3, 3), 3, 0, 2, 1, 2), ((2, 5), (2, 3), (0, 2), (1, 0), 1, 1),
    ((3, 3), 1, 1, 0, 2, 4), ((1, 1), 2, 0, 1, 1, 1), ((5, 5), 2, ((2, 1), (0, 3)), 0, 1, 1),
    ((1, 1), 1, 0, 1, 2, 1),   # output larger than input, yet 1x1 at stride 1: not a matrix product
])
def test_conv_transpose2d_and_grads_match_cpu(k, stride, padding, output_padding, dilation, groups, algo, dtype, rng):
    x = _rand(rng, (2, 8, 7, 6))
    w = _rand(rng, (8, 12 // groups) + k)
    b = _rand(rng, (12,))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    y_ref = fastconv.conv_transpose2d(x, w, b, **kw)
    gy = _rand(rng, y_ref.shape)
    X, Wt, B, GY = (cp.asarray(a.astype(dtype)) for a in (x, w, b, gy))
    check(fastconv.conv_transpose2d(X, Wt, B, algo=algo, **kw), y_ref, dtype, "forward")
    check(grad.conv_transpose2d_input(x.shape, Wt, GY, algo=algo, **kw),
          grad.conv_transpose2d_input(x.shape, w, gy, **kw), dtype, "grad input")
    check(grad.conv_transpose2d_weight(X, w.shape, GY, algo=algo, **kw),
          grad.conv_transpose2d_weight(x, w.shape, gy, **kw), dtype, "grad weight")


# ----------------------------------------------------------------------------- random geometries
try:
    from hypothesis import HealthCheck, assume, given, settings, strategies as st
except ImportError:  # a GPU machine without hypothesis still runs the fixed grids
    st = None

if st is not None:
    @st.composite
    def geometries(draw):
        """x shape, w shape and the keyword arguments of a random 2-D convolution (maybe invalid)."""
        groups = draw(st.integers(1, 3))
        c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
        pair = st.tuples(st.integers(0, 3), st.integers(0, 3))
        padding = draw(st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"]), st.tuples(pair, pair)))
        return ((draw(st.integers(1, 2)), c_in, draw(st.integers(1, 12)), draw(st.integers(1, 12))),
                (c_out, c_in // groups, draw(st.integers(1, 4)), draw(st.integers(1, 4))),
                dict(stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=padding,
                     dilation=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), groups=groups))

    @settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(geometries(), st.sampled_from(GENERAL))
    def test_random_geometries_match_cpu(geometry, algo):
        """Forward and both gradients in float64 against the CPU engine, on shapes nobody chose."""
        from fastconv.geometry import conv_geometry
        x_shape, w_shape, kw = geometry
        try:
            conv_geometry(x_shape, w_shape, **kw)
        except ValueError:  # a kernel larger than the padded input
            assume(False)
        rng = np.random.default_rng(abs(hash((x_shape, w_shape))) % 2**32)
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        y = fastconv.conv2d(x, w, **kw)
        gy = rng.standard_normal(y.shape)
        X, Wt, GY = cp.asarray(x), cp.asarray(w), cp.asarray(gy)
        check(fastconv.conv2d(X, Wt, algo=algo, **kw), y, "float64", "forward")
        check(grad.conv2d_input(x_shape, Wt, GY, algo=algo, **kw), grad.conv2d_input(x_shape, w, gy, **kw),
              "float64", "grad input")
        check(grad.conv2d_weight(X, w_shape, GY, algo=algo, **kw), grad.conv2d_weight(x, w_shape, gy, **kw),
              "float64", "grad weight")


# ----------------------------------------------------------------------------- Winograd
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size,padding", [((1, 1), 1), ((3, 4), 0), ((7, 6), 3), ((5, 9), ((2, 0), (0, 1))),
                                          ((6, 6), "same"), ((8, 5), "valid"), ((4, 4), 2)])
def test_winograd_sizes_and_paddings_match_cpu(size, padding, dtype, rng):
    """Odd and even output sizes (partial 2x2 tiles), outputs smaller than a tile, padding 3
    (the input gradient's padding 2 - 3 crops) and asymmetric pairs; forward, input gradient and
    weight gradient (F(3x3, 2x2))."""
    x, w = _rand(rng, (3, 5) + size), _rand(rng, (7, 5, 3, 3))
    y_ref = fastconv.conv2d(x, w, padding=padding)
    gy = _rand(rng, y_ref.shape)
    X, Wt, GY = (cp.asarray(a.astype(dtype)) for a in (x, w, gy))
    check(fastconv.conv2d(X, Wt, padding=padding, algo="winograd"), y_ref, dtype, "forward")
    check(grad.conv2d_input(x.shape, Wt, GY, padding=padding, algo="winograd"),
          grad.conv2d_input(x.shape, w, gy, padding=padding), dtype, "grad input")
    check(grad.conv2d_weight(X, w.shape, GY, padding=padding, algo="winograd"),
          grad.conv2d_weight(x, w.shape, gy, padding=padding), dtype, "grad weight")


def test_winograd_batch_tiles_cover_the_batch(rng, monkeypatch):
    """A workspace of one image per tile: the transforms and GEMMs run image by image, and the
    weight gradient adds up the tiles' GEMMs."""
    monkeypatch.setattr(cuda_backend, "WORKSPACE_BYTES", 1)
    x, w = _rand(rng, (3, 4, 6, 7)), _rand(rng, (5, 4, 3, 3))
    check(fastconv.conv2d(cp.asarray(x), cp.asarray(w), padding=1, algo="winograd"),
          fastconv.conv2d(x, w, padding=1), "float64", "forward in 3 batch tiles")
    gy = _rand(rng, (3, 5, 6, 7))
    check(grad.conv2d_weight(cp.asarray(x), w.shape, cp.asarray(gy), padding=1, algo="winograd"),
          grad.conv2d_weight(x, w.shape, gy, padding=1), "float64", "grad weight in 3 batch tiles")


@pytest.mark.parametrize("w_shape,kw", [((4, 4, 3, 3), dict(stride=2)), ((4, 4, 3, 3), dict(dilation=2)),
                                        ((4, 2, 3, 3), dict(groups=2)), ((4, 4, 5, 5), {})])
def test_winograd_refuses_what_it_does_not_compute(w_shape, kw):
    x, w = cp.zeros((1, 4, 8, 8)), cp.zeros(w_shape)
    gy = cp.zeros(fastconv.output_shape(x.shape, w_shape, **kw))
    with pytest.raises(ValueError, match="winograd"):
        fastconv.conv2d(x, w, algo="winograd", **kw)
    with pytest.raises(ValueError, match="winograd"):
        grad.conv2d_weight(x, w_shape, gy, algo="winograd", **kw)


if st is not None:
    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 11), st.integers(1, 11),
           st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"]),
                     st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                               st.tuples(st.integers(0, 3), st.integers(0, 3)))))
    def test_winograd_random_geometries_match_cpu(n, c_in, c_out, h, w_, padding):
        """Forward and both gradients in float64 against the CPU engine on 3x3 stride-1 shapes."""
        from fastconv.geometry import conv_geometry
        try:
            conv_geometry((n, c_in, h, w_), (c_out, c_in, 3, 3), 1, padding)
        except ValueError:
            return  # an invalid geometry: refused before any kernel, as on the CPU
        rng = np.random.default_rng(h * 131 + w_)
        x, w = _rand(rng, (n, c_in, h, w_)), _rand(rng, (c_out, c_in, 3, 3))
        y = fastconv.conv2d(x, w, padding=padding)
        gy = _rand(rng, y.shape)
        check(fastconv.conv2d(cp.asarray(x), cp.asarray(w), padding=padding, algo="winograd"), y,
              "float64", "forward")
        check(grad.conv2d_input(x.shape, cp.asarray(w), cp.asarray(gy), padding=padding, algo="winograd"),
              grad.conv2d_input(x.shape, w, gy, padding=padding), "float64", "grad input")
        check(grad.conv2d_weight(cp.asarray(x), w.shape, cp.asarray(gy), padding=padding, algo="winograd"),
              grad.conv2d_weight(x, w.shape, gy, padding=padding), "float64", "grad weight")


# ----------------------------------------------------------------------------- anchors, small batch
ANCHORS = {  # (C_in, C_out, H, k, stride, padding, groups, transposed)
    "a1": (64, 64, 56, 3, 1, 1, 1, False),
    "a3": (256, 256, 14, 3, 1, 1, 1, False),
    "b": (3, 64, 224, 7, 2, 3, 1, False),
    "c": (256, 64, 28, 1, 1, 0, 1, False),
    "d": (128, 128, 56, 3, 1, 1, 128, False),
    "e": (64, 32, 28, 4, 2, 1, 1, True),
}


@pytest.mark.parametrize("anchor,algo", [
    (n, a) for n in sorted(ANCHORS) for a in ALGOS
    if a != "winograd" or (not ANCHORS[n][7] and _winograd_applies((ANCHORS[n][3],) * 2, ANCHORS[n][4], 1, ANCHORS[n][6]))])
def test_anchor_shapes_float32(anchor, algo, rng):
    C_in, C_out, H, k, s, p, groups, transposed = ANCHORS[anchor]
    x = _rand(rng, (2, C_in, H, H)).astype(np.float32)
    if transposed:
        w = _rand(rng, (C_in, C_out // groups, k, k)).astype(np.float32)
        ref = fastconv.conv_transpose2d(x.astype(np.float64), w.astype(np.float64), stride=s, padding=p)
        got = fastconv.conv_transpose2d(cp.asarray(x), cp.asarray(w), stride=s, padding=p, algo=algo)
    else:
        w = _rand(rng, (C_out, C_in // groups, k, k)).astype(np.float32)
        ref = fastconv.conv2d(x.astype(np.float64), w.astype(np.float64), stride=s, padding=p, groups=groups)
        got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), stride=s, padding=p, groups=groups, algo=algo)
    check(got, ref, "float32", f"anchor {anchor}")


# ----------------------------------------------------------------------------- properties
def test_gpu_results_are_deterministic(rng):
    x = cp.asarray(_rand(rng, (4, 32, 20, 20)).astype(np.float32))
    w = cp.asarray(_rand(rng, (48, 32, 3, 3)).astype(np.float32))
    for algo in GENERAL:
        y1 = fastconv.conv2d(x, w, stride=2, padding=1, algo=algo)
        gy = cp.ones_like(y1)
        a = [fastconv.conv2d(x, w, stride=2, padding=1, algo=algo),
             grad.conv2d_input(x.shape, w, gy, stride=2, padding=1, algo=algo),
             grad.conv2d_weight(x, w.shape, gy, stride=2, padding=1, algo=algo)]
        b = [y1, grad.conv2d_input(x.shape, w, gy, stride=2, padding=1, algo=algo),
             grad.conv2d_weight(x, w.shape, gy, stride=2, padding=1, algo=algo)]
        for u, v in zip(a, b):
            assert cp.array_equal(u, v), algo


def test_cupy_arrays_stay_on_the_gpu_and_auto_works(rng):
    x = cp.asarray(_rand(rng, (2, 16, 12, 12)).astype(np.float32))
    w = cp.asarray(_rand(rng, (16, 16, 3, 3)).astype(np.float32))
    y = fastconv.conv2d(x, w, padding="same")
    assert isinstance(y, cp.ndarray) and y.dtype == cp.float32 and y.shape == (2, 16, 12, 12)
    assert get_backend(x) is cuda_backend


def test_mixed_devices_are_rejected():
    with pytest.raises(TypeError, match="same device"):
        fastconv.conv2d(cp.ones((1, 1, 4, 4), cp.float32), np.ones((1, 1, 3, 3), np.float32))


def test_auto_rule_on_the_anchor_shapes():
    """What ``auto`` runs on the GPU (bench/RESULTS-gpu.md has the timings behind it)."""
    geom = fastconv.conv_geometry
    rule = cuda_backend.choose_algo
    assert rule(geom((64, 64, 56, 56), (64, 64, 3, 3), 1, 1)) == "winograd"          # a1
    assert rule(geom((64, 256, 14, 14), (256, 256, 3, 3), 1, 1)) == "winograd"       # a3
    assert rule(geom((64, 3, 224, 224), (64, 3, 3, 3), 1, 1)) == "implicit_gemm"     # a2: 3 channels in
    assert rule(geom((64, 32, 56, 56), (32, 32, 3, 3), 1, 1)) == "implicit_gemm"     # a tie at 32
    assert rule(geom((64, 64, 56, 56), (64, 64, 3, 3), 2, 1)) == "implicit_gemm"     # stride 2
    assert rule(geom((64, 256, 28, 28), (64, 256, 1, 1))) == "implicit_gemm"         # c
    assert rule(geom((64, 128, 56, 56), (128, 1, 3, 3), 1, 1, 1, 128)) == "direct"   # d
    # Winograd's weight gradient only where its 16 GEMMs have outputs enough (a3, not a1)
    assert rule(geom((64, 256, 14, 14), (256, 256, 3, 3), 1, 1), "grad_weight") == "winograd"
    assert rule(geom((64, 64, 56, 56), (64, 64, 3, 3), 1, 1), "grad_weight") == "implicit_gemm"
    assert rule(geom((64, 64, 56, 56), (64, 64, 3, 3), 1, 1), "grad_input") == "winograd"


def test_unknown_algo_names_the_choices():
    with pytest.raises(ValueError, match="implicit_gemm"):
        fastconv.conv2d(cp.ones((1, 1, 4, 4), cp.float32), cp.ones((1, 1, 3, 3), cp.float32), algo="fft")


# ----------------------------------------------------------------------------- pooling kernels
def _pool_geom(shape, k, s, p, d=1):
    from fastconv.geometry import conv_geometry
    C = shape[1]
    return conv_geometry(shape, (C, 1, k, k), s, p, d, C)


def _windows(x, g, fill):
    """(N, C, Ho, Wo, KH*KW) window values of x with the implicit padding set to ``fill``."""
    (pt, pb), (pl, pr) = g.padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + g.stride[0]), (pl, pr + g.stride[1])), constant_values=fill)
    KH, KW = g.kernel
    Ho, Wo = g.out_size
    taps = [xp[:, :, i * g.dilation[0]: i * g.dilation[0] + Ho * g.stride[0]: g.stride[0],
               j * g.dilation[1]: j * g.dilation[1] + Wo * g.stride[1]: g.stride[1]]
            for i in range(KH) for j in range(KW)]
    return np.stack(taps, axis=-1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k,s,p,d", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2), (3, 3, 0, 1)])
def test_max_pool_kernels(k, s, p, d, dtype, rng):
    x = _rand(rng, (2, 3, 11, 10)).astype(dtype)
    g = _pool_geom(x.shape, k, s, p, d)
    y, idx = cuda_backend.max_pool2d_forward(cp.asarray(x), g)
    win = _windows(x, g, -np.inf)
    np.testing.assert_array_equal(cp.asnumpy(y), win.max(-1))
    # the gradient: each dy goes to its argmax; adjoint check against the forward selection
    gy = _rand(rng, y.shape).astype(dtype)
    dx = cp.asnumpy(cuda_backend.max_pool2d_backward(cp.asarray(gy), idx, g))
    flat = cp.asnumpy(idx).reshape(2, 3, -1)
    ref = np.zeros((2, 3, 11 * 10))
    for n in range(2):
        for c in range(3):
            np.add.at(ref[n, c], flat[n, c], gy.reshape(2, 3, -1)[n, c])
    np.testing.assert_allclose(dx.reshape(2, 3, -1), ref, rtol=TOL[dtype] * 10, atol=TOL[dtype])


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_avg_pool_kernels(k, s, p, include_pad, rng):
    x = _rand(rng, (2, 3, 9, 8))
    g = _pool_geom(x.shape, k, s, p)
    win = _windows(x, g, 0.0)
    cnt = k * k if include_pad else _windows(np.ones_like(x), g, 0.0).sum(-1)
    y = cuda_backend.avg_pool2d_forward(cp.asarray(x), g, include_pad)
    np.testing.assert_allclose(cp.asnumpy(y), win.sum(-1) / cnt, rtol=1e-12)
    # adjoint identity <avg(x), v> == <x, avg_backward(v)>
    v = _rand(rng, y.shape)
    dx = cuda_backend.avg_pool2d_backward(cp.asarray(v), g, include_pad)
    assert abs(float((y * cp.asarray(v)).sum()) - float((cp.asarray(x) * dx).sum())) < 1e-10


# ----------------------------------------------------------------------------- fused epilogue
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_fused_activation_and_its_gradient_on_the_gpu(algo, activation):
    """conv2d(..., activation=) and the op's input gradient on CuPy arrays equal the CPU engine."""
    from fastconv import ops
    from fastconv.autograd import Tensor
    rng = np.random.default_rng(3)
    x = 3 * rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 4, 3, 3))
    b = rng.standard_normal(6)
    ref = fastconv.conv2d(x, w, b, padding=1, activation=activation)
    got = fastconv.conv2d(cp.asarray(x, cp.float32), cp.asarray(w, cp.float32), cp.asarray(b, cp.float32),
                          padding=1, activation=activation, algo=algo)
    check(got, ref, "float32", f"conv2d {algo} activation={activation}")
    v = rng.standard_normal(ref.shape)
    grads = []
    for xp in (np, cp):
        t = Tensor(xp.asarray(x), requires_grad=True)
        ops.conv2d(t, xp.asarray(w), xp.asarray(b), padding=1, activation=activation,
                   algo=algo if xp is cp else "auto").backward(xp.asarray(v))
        grads.append(t.grad)
    check(grads[1], grads[0], "float64", f"input gradient {algo} activation={activation}")


# ----------------------------------------------------------------------------- layers and objectives
def test_state_dicts_cross_devices_and_constant_objectives_follow_the_device():
    from fastconv import nn
    from fastconv.autograd import Tensor
    from fastconv.interpret import objectives as O
    gpu = nn.Conv2d(3, 4, 3).to("cuda")
    cpu = nn.Conv2d(3, 4, 3).load_state_dict(gpu.state_dict())      # device -> host
    np.testing.assert_array_equal(cpu.weight.data, cp.asnumpy(gpu.weight.data))
    back = nn.Conv2d(3, 4, 3).to("cuda").load_state_dict(cpu.state_dict())  # host -> device
    assert isinstance(back.weight.data, cp.ndarray) and cp.array_equal(back.weight.data, gpu.weight.data)
    acts = {"a": Tensor(cp.ones((1, 3, 2, 2), cp.float32))}
    value = (O.as_objective(1.5) + O.direction("a", np.ones(3)))(acts)  # 1.5 + mean of (1,1,1).(1,1,1)
    assert isinstance(value.data, cp.ndarray) and float(value.data) == 4.5
    assert isinstance(O.as_objective(2.0)(acts).data, cp.ndarray)


def test_autotune_times_the_cuda_algorithms(rng):
    """With autotuning on, 'auto' on CuPy arrays times every CUDA algorithm (synchronizing the
    device) and its answer matches the CPU engine's."""
    from fastconv import autotune
    x, w = _rand(rng, (2, 4, 9, 9)), _rand(rng, (6, 4, 3, 3))
    gy = _rand(rng, (2, 6, 9, 9))
    autotune.clear()
    try:
        with autotune.enabled():
            y = fastconv.conv2d(cp.asarray(x), cp.asarray(w), padding=1)
            gw = grad.conv2d_weight(cp.asarray(x), w.shape, cp.asarray(gy), padding=1)
        tuned = autotune.choices()
    finally:
        autotune.clear()
    check(y, fastconv.conv2d(x, w, padding=1), "float64", "tuned forward")
    check(gw, grad.conv2d_weight(x, w.shape, gy, padding=1), "float64", "tuned weight gradient")
    by_op = {p.op: (p, c) for p, c in tuned.items()}
    assert set(by_op) == {"forward", "grad_weight"}
    p, c = by_op["forward"]
    assert p.backend == "cuda" and p.context[0] == "device" and set(c.times) == set(ALGOS)  # 3x3, stride 1: Winograd too
    assert set(by_op["grad_weight"][1].times) == set(ALGOS)
