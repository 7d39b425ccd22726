"""Winograd F(4x4, 3x3): its transforms, its results against the float64 references, its gradient."""
import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st
from numba import njit

import fastconv
from fastconv import grad
from fastconv.backends import cpu
from fastconv.geometry import conv_geometry
from fastconv.kernels.cpu import winograd
from oracle import ref_conv, rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _toom_cook(points):
    """AT, G, BT of F(m, 3) on the given finite points (plus infinity), in exact arithmetic.

    Lavin & Gray's construction: G evaluates the filter polynomial at the points (scaled by the
    Lagrange denominators), BT holds the coefficients of prod(x - p_k) / (x - p_i), AT the
    output polynomial's powers; the point at infinity adds the leading-coefficient row/column.
    """
    pts = [Fraction(p) for p in points]
    a, m = len(pts) + 1, len(pts) - 1

    def mul(p, q):
        out = [Fraction(0)] * (len(p) + len(q) - 1)
        for i, x in enumerate(p):
            for j, y in enumerate(q):
                out[i + j] += x * y
        return out

    AT = [[p ** i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    G, BT = [], []
    for i, p in enumerate(pts):
        den, poly = Fraction(1), [Fraction(1)]
        for k, q in enumerate(pts):
            if k != i:
                den *= p - q
                poly = mul(poly, [-q, Fraction(1)])
        G.append([p ** j / den for j in range(3)])
        BT.append(poly + [Fraction(0)] * (a - len(poly)))
    G.append([Fraction(0), Fraction(0), Fraction(1)])
    full = [Fraction(1)]
    for q in pts:
        full = mul(full, [-q, Fraction(1)])
    BT.append(full)
    return [np.array(t, dtype=float) for t in (AT, G, BT)]


def test_transforms_are_the_toom_cook_matrices():
    AT, G, BT = _toom_cook([0, 1, -1, Fraction(1, 2), -2])
    np.testing.assert_array_equal(winograd.AT, AT)
    np.testing.assert_allclose(winograd.G, G, rtol=1e-15)
    np.testing.assert_array_equal(winograd.BT, BT)


def test_transforms_compute_a_correlation(rng):
    d, g = rng.standard_normal(6), rng.standard_normal(3)
    y = winograd.AT @ ((winograd.G @ g) * (winograd.BT @ d))
    np.testing.assert_allclose(y, np.correlate(d, g, mode="valid"), rtol=0, atol=1e-13)


SHAPES = [  # N, C_in, C_out, H, W
    (2, 5, 7, 13, 9), (1, 3, 2, 1, 1), (1, 2, 3, 4, 4), (3, 8, 6, 6, 17), (1, 1, 1, 2, 30)]
PADDINGS = [0, 1, 2, "same", "valid", ((1, 2), (0, 1)), ((0, 2), (2, 0))]


def _pairs(padding):
    if padding == "same":
        return [(1, 1), (1, 1)]
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    return list(padding)


def _nonempty(shape, padding):
    (t, b), (l, r) = _pairs(padding)
    return shape[3] + t + b >= 3 and shape[4] + l + r >= 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,padding", [(s, p) for s, p in itertools.product(SHAPES, PADDINGS)
                                           if _nonempty(s, p)])
def test_forward_matches_reference(rng, dtype, shape, padding):
    N, C, Co, H, W = shape
    pads = _pairs(padding)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Co, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(Co).astype(dtype)
    y = fastconv.conv2d(x, w, b, padding=padding, algo="winograd")
    ref = ref_conv(x, w, (1, 1), pads, (1, 1), 1) + b[:, None, None]
    assert y.dtype == dtype and y.shape == ref.shape
    assert rel_err(y, ref) < TOL[dtype]


@pytest.mark.parametrize("padding", [1, "valid", ((0, 2), (1, 0)), 3])
def test_input_gradient_adjoint_identity_and_differences(rng, padding):
    x = rng.standard_normal((2, 6, 11, 9))
    w = rng.standard_normal((5, 6, 3, 3))
    y = fastconv.conv2d(x, w, padding=padding, algo="winograd")
    v = rng.standard_normal(y.shape)
    gx = grad.conv2d_input(x.shape, w, v, padding=padding, algo="winograd")
    lhs, rhs = np.vdot(y, v), np.vdot(x, gx)
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    # central differences of <conv(x), v> along a random direction
    e, h = rng.standard_normal(x.shape), 1e-3
    fd = (np.vdot(fastconv.conv2d(x + h * e, w, padding=padding, algo="winograd"), v)
          - np.vdot(fastconv.conv2d(x - h * e, w, padding=padding, algo="winograd"), v)) / (2 * h)
    assert abs(fd - np.vdot(gx, e)) <= 1e-8 * abs(fd)
    # the weight gradient (im2col under algo='winograd') by the adjoint identity
    gw = grad.conv2d_weight(x, w.shape, v, padding=padding, algo="winograd")
    assert abs(lhs - np.vdot(w, gw)) <= 1e-12 * abs(lhs)


def test_transposed_3x3_stride1_runs_winograd(rng):
    x = rng.standard_normal((2, 4, 7, 8))
    w = rng.standard_normal((4, 3, 3, 3))          # (C_in, C_out, kh, kw)
    y = fastconv.conv_transpose2d(x, w, padding=1, algo="winograd")
    ref = fastconv.conv_transpose2d(x, w, padding=1, algo="direct")
    assert rel_err(y, ref) < 1e-12


def test_float32_accuracy_on_many_channels(rng):
    """Error grows with the reduction; at 256 channels it stays well inside the 1e-5 tolerance."""
    x = rng.standard_normal((1, 256, 10, 10)).astype(np.float32)
    w = rng.standard_normal((16, 256, 3, 3)).astype(np.float32)
    y = fastconv.conv2d(x, w, padding=1, algo="winograd")
    assert rel_err(y, ref_conv(x, w, (1, 1), [(1, 1), (1, 1)], (1, 1), 1)) < 1e-5


@pytest.mark.parametrize("kw,msg", [
    (dict(stride=2), "stride (2, 2)"), (dict(dilation=2), "dilation (2, 2)"),
    (dict(groups=2), "groups=2"), (dict(kernel=5), "kernel (5, 5)")])
def test_unsupported_geometry_is_refused(rng, kw, msg):
    k = kw.pop("kernel", 3)
    g = kw.get("groups", 1)
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 4 // g, k, k)).astype(np.float32)
    x0, w0 = x.copy(), w.copy()
    with pytest.raises(ValueError, match=r"algo='winograd' needs .*" + msg.replace("(", r"\(").replace(")", r"\)")):
        fastconv.conv2d(x, w, algo="winograd", **kw)
    with pytest.raises(ValueError, match=r"algo='winograd' needs .*" + msg.replace("(", r"\(").replace(")", r"\)")):
        gy = np.zeros(fastconv.conv2d(x, w, algo="direct", **kw).shape, np.float32)
        grad.conv2d_input(x.shape, w, gy, algo="winograd", **kw)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_one_dimensional_convolution_is_refused(rng):
    with pytest.raises(ValueError, match=r"algo='winograd' needs a 2-D convolution.*\(1-D\)"):
        fastconv.conv1d(rng.standard_normal((1, 2, 9)), rng.standard_normal((2, 2, 3)), algo="winograd")


def test_auto_picks_winograd_for_3x3_layers_with_many_channels():
    assert cpu.choose_algo(conv_geometry((8, 64, 56, 56), (64, 64, 3, 3), 1, 1)) == "winograd"
    assert cpu.choose_algo(conv_geometry((8, 256, 14, 14), (256, 256, 3, 3), 1, 1)) == "winograd"
    assert cpu.choose_algo(conv_geometry((8, 16, 56, 56), (64, 16, 3, 3), 1, 1)) == "im2col"
    assert cpu.choose_algo(conv_geometry((8, 64, 56, 56), (64, 64, 3, 3), 2, 1)) == "im2col"
    assert cpu.choose_algo(conv_geometry((1, 256, 28, 28), (256, 256, 3, 3), 1, 1)) == "winograd"
    # few tiles (N=2, 14x14: 32 of them): the weight transform would dominate
    assert cpu.choose_algo(conv_geometry((2, 256, 14, 14), (256, 256, 3, 3), 1, 1)) == "im2col"


@given(N=st.integers(1, 3), C=st.integers(1, 6), Co=st.integers(1, 6), H=st.integers(1, 14),
       W=st.integers(1, 14), pads=st.tuples(*[st.integers(0, 3)] * 4), seed=st.integers(0, 2**16))
def test_random_shapes_match_direct(N, C, Co, H, W, pads, seed):
    pairs = [(pads[0], pads[1]), (pads[2], pads[3])]
    if H + pads[0] + pads[1] < 3 or W + pads[2] + pads[3] < 3:
        return
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, W))
    w = r.standard_normal((Co, C, 3, 3))
    x0 = x.copy()
    y = fastconv.conv2d(x, w, padding=pairs, algo="winograd")
    assert rel_err(y, fastconv.conv2d(x, w, padding=pairs, algo="direct")) < 1e-12
    v = r.standard_normal(y.shape)
    gx = grad.conv2d_input(x.shape, w, v, padding=pairs, algo="winograd")
    assert rel_err(gx, grad.conv2d_input(x.shape, w, v, padding=pairs, algo="direct")) < 1e-12
    np.testing.assert_array_equal(x, x0)


# --- the vector code: every register width, both dtypes, against the matrices ---------------

_KERNELS = {vb: winograd.make_tile_transforms(vb) for vb in (16, 32, 64)}


def _lanes(vector_bytes, dtype):
    return vector_bytes // np.dtype(dtype).itemsize


def _run_tile_kernels(vector_bytes):
    input_tile, output_tile, weight_tile, transpose_block = _KERNELS[vector_bytes]

    @njit
    def run(kind, src, a, b, c, dst, d, e, f, bias, boff, lo, hi):
        if kind == 0:
            input_tile(src, a, b, c, dst, d, e)
        elif kind == 1:
            output_tile(src, a, b, dst, d, e, f, bias, boff, lo, hi)
        elif kind == 2:
            weight_tile(src, a, b, dst, d, e)
        else:
            transpose_block(src, a, b, dst, d, e)
    return run


@pytest.mark.parametrize("vector_bytes", [16, 32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_transforms_are_the_matrices_on_every_lane(rng, vector_bytes, dtype):
    """input_tile = BT d BT^T, output_tile = clip(AT m AT^T + bias) (NaN kept), weight_tile =
    G g G^T, transpose_block a transpose: lane by lane, at odd offsets and strides, writing
    nothing outside their vectors and leaving their sources as they were."""
    run, L = _run_tile_kernels(vector_bytes), _lanes(vector_bytes, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    none = np.zeros(1, dtype)
    inf = dtype(np.inf)
    # input: d[k][j] = src[3 + k*row + j*col : +L], out[a*6+b] at dst[5 + (a*6+b)*stride : +L]
    row, col, stride = 7 * L + 1, L + 2, L + 3
    src = rng.standard_normal(3 + 5 * row + 5 * col + L).astype(dtype)
    dst = np.full(5 + 35 * stride + L + 4, 7.0, dtype)
    before = src.copy()
    run(0, src, 3, row, col, dst, 5, stride, 0, none, 0, -inf, inf)
    d = np.array([[src[3 + k * row + j * col:][:L] for j in range(6)] for k in range(6)])   # (6, 6, L)
    want = np.einsum("ak,kjl,bj->abl", winograd.BT, d.astype(np.float64), winograd.BT).reshape(36, L)
    got = np.array([dst[5 + q * stride:][:L] for q in range(36)])
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    written = np.zeros(dst.size, bool)
    for q in range(36):
        written[5 + q * stride:5 + q * stride + L] = True
    assert (dst[~written] == 7.0).all() and np.array_equal(src, before)
    # output, with a bias, a relu6 clip and a NaN in one lane
    m = rng.standard_normal(2 + 35 * stride + L).astype(dtype)
    m[2 + 7 * stride] = np.nan                                  # lane 0 of m[1][1]
    bias = rng.standard_normal(L + 1).astype(dtype)
    dst = np.full(1 + 3 * row + 3 * col + L + 2, 7.0, dtype)
    run(1, m, 2, stride, 0, dst, 1, row, col, bias, 1, dtype(0), dtype(6))
    mm = np.array([m[2 + q * stride:][:L] for q in range(36)]).reshape(6, 6, L).astype(np.float64)
    want = np.clip(np.einsum("ia,abl,jb->ijl", winograd.AT, mm, winograd.AT) + bias[1:], 0, 6)
    got = np.array([[dst[1 + i * row + j * col:][:L] for j in range(4)] for i in range(4)])
    assert np.isnan(got[:, :, 0]).all() and np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.abs(got[ok] - want[ok]).max() <= tol * 6
    # weights: g[k][j] = src[4 + (k*3 + j)*stride : +L]
    g = rng.standard_normal(4 + 8 * stride + L).astype(dtype)
    dst = np.zeros(36 * stride + L, dtype)
    run(2, g, 4, stride, 0, dst, 0, stride, 0, none, 0, -inf, inf)
    gg = np.array([g[4 + q * stride:][:L] for q in range(9)]).reshape(3, 3, L).astype(np.float64)
    want = np.einsum("ak,kjl,bj->abl", winograd.G, gg, winograd.G).reshape(36, L)
    got = np.array([dst[q * stride:][:L] for q in range(36)])
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    # transpose: dst[2 + j*col + r] = src[1 + r*row + j]
    src = rng.standard_normal(1 + L * row).astype(dtype)
    dst = np.full(2 + L * col, 7.0, dtype)
    run(3, src, 1, row, 0, dst, 2, col, 0, none, 0, -inf, inf)
    block = np.array([src[1 + r * row:][:L] for r in range(L)])
    got = np.array([dst[2 + j * col:][:L] for j in range(L)])
    assert np.array_equal(got, block.T)
    assert (dst[[2 + j * col + L + i for j in range(L - 1) for i in range(col - L)]] == 7.0).all()


@given(dtype=st.sampled_from([np.float32, np.float64]), N=st.integers(1, 3), C=st.integers(1, 40),
       Co=st.integers(1, 40), H=st.integers(1, 11), W=st.integers(1, 40),
       pads=st.tuples(*[st.integers(0, 3)] * 4), seed=st.integers(0, 2**16))
def test_wide_layers_match_direct(dtype, N, C, Co, H, W, pads, seed):
    """Channel counts and widths across whole vectors and their tails (the blocks transposed in
    registers, the rest element by element), forward and input gradient (whose low padding 2 - p
    is negative for p = 3)."""
    pairs = [(pads[0], pads[1]), (pads[2], pads[3])]
    if H + pads[0] + pads[1] < 3 or W + pads[2] + pads[3] < 3:
        return
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, W)).astype(dtype)
    w = r.standard_normal((Co, C, 3, 3)).astype(dtype)
    b = r.standard_normal(Co).astype(dtype)
    tol = TOL[dtype]
    y = fastconv.conv2d(x, w, b, padding=pairs, algo="winograd")
    assert rel_err(y, ref_conv(x, w, (1, 1), pairs, (1, 1), 1) + b[:, None, None]) < tol
    v = r.standard_normal(y.shape).astype(dtype)
    gx = grad.conv2d_input(x.shape, w, v, padding=pairs, algo="winograd")
    assert rel_err(gx, grad.conv2d_input(x.shape, w.astype(np.float64), v.astype(np.float64),
                                         padding=pairs, algo="direct")) < tol
