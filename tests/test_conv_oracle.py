"""Every convolution and algorithm against the float64 references in tests/oracle.py."""
import itertools

import numpy as np
import pytest

import fastconv
from oracle import ref_conv, ref_conv_transpose, rel_err, same_pairs

ALGOS = ["direct", "im2col", "fft", "auto"]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _pairs(padding, in_size, kernel, stride, dilation):
    nd = len(in_size)
    if padding == "same":
        return same_pairs(in_size, kernel, stride, dilation)
    if padding == "valid":
        return [(0, 0)] * nd
    if isinstance(padding, int):
        return [(padding, padding)] * nd
    return [tuple(p) if isinstance(p, tuple) else (p, p) for p in padding]


def _tuple(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


CASES_2D = list(itertools.product(
    [1, 2, (2, 1)],                                  # stride
    [0, 1, "same", "valid", ((1, 2), (0, 1))],       # padding
    [1, 2],                                          # dilation
    [1, 2],                                          # groups
))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("stride,padding,dilation,groups", CASES_2D)
def test_conv2d_matches_reference(rng, dtype, algo, stride, padding, dilation, groups):
    x = rng.standard_normal((2, 4, 9, 8)).astype(dtype)
    w = rng.standard_normal((6, 4 // groups, 3, 2)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    y = fastconv.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, algo=algo)
    s, d = _tuple(stride, 2), _tuple(dilation, 2)
    ref = ref_conv(x, w, s, _pairs(padding, (9, 8), (3, 2), s, d), d, groups) + b[:, None, None]
    assert y.dtype == dtype and y.shape == ref.shape
    assert rel_err(y, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("stride,padding,dilation,groups", list(itertools.product(
    [1, 3], [0, 2, "same", "valid", [(0, 3)]], [1, 2], [1, 3])))
def test_conv1d_matches_reference(rng, dtype, algo, stride, padding, dilation, groups):
    x = rng.standard_normal((2, 6, 17)).astype(dtype)
    w = rng.standard_normal((3, 6 // groups, 4)).astype(dtype)
    y = fastconv.conv1d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups, algo=algo)
    ref = ref_conv(x, w, (stride,), _pairs(padding, (17,), (4,), (stride,), (dilation,)), (dilation,), groups)
    assert y.shape == ref.shape
    assert rel_err(y, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (2, 0, 0, 2, 2), (3, 1, 2, 1, 1), ((2, 1), ((1, 0), (2, 1)), (1, 0), 1, 2),
    (2, 1, 0, 3, 1), (1, 2, 0, 1, 2), (2, 0, 2, 3, 1),
])
def test_conv_transpose2d_matches_reference(rng, dtype, algo, stride, padding, output_padding, dilation, groups):
    x = rng.standard_normal((2, 4, 5, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 4)).astype(dtype)
    b = rng.standard_normal(3 * groups).astype(dtype)
    y = fastconv.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                                  groups=groups, dilation=dilation, algo=algo)
    s, d, op = _tuple(stride, 2), _tuple(dilation, 2), _tuple(output_padding, 2)
    pairs = [(padding, padding)] * 2 if isinstance(padding, int) else list(padding)
    ref = ref_conv_transpose(x, w, s, pairs, op, d, groups) + b[:, None, None]
    assert y.shape == ref.shape
    assert rel_err(y, ref) < TOL[dtype]


@pytest.mark.parametrize("algo", ALGOS)
def test_1x1_transposed_with_output_padding_is_not_a_matrix_product(rng, algo):
    # Kernel 1, stride 1, dilation 2, output_padding 1: the output has one row more than the
    # input, which no tap reaches. Found by a random cross-check against PyTorch; the 1x1
    # fast path (one matmul) used to take it and fail to reshape.
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 3, 1, 1))
    gy = rng.standard_normal((2, 3, 6, 6))
    y = fastconv.conv_transpose2d(x, w, stride=1, output_padding=(1, 0), dilation=2, algo=algo)
    ref = ref_conv_transpose(x, w, (1, 1), [(0, 0)] * 2, (1, 0), (2, 2), 1)
    assert y.shape == ref.shape == (2, 3, 6, 6)
    assert rel_err(y, ref) < 1e-12
    assert np.abs(y[:, :, 5]).max() < 1e-12      # exactly 0 but for the FFT's rounding
    # the gradients take the same geometry: the input gradient is the forward 1x1 convolution
    # of grad_output without its last row, the weight gradient correlates x with that part
    gx = fastconv.grad.conv_transpose2d_input(x.shape, w, gy, output_padding=(1, 0), dilation=2, algo=algo)
    gw = fastconv.grad.conv_transpose2d_weight(x, w.shape, gy, output_padding=(1, 0), dilation=2, algo=algo)
    assert rel_err(gx, np.einsum("nohw,ioab->nihw", gy[:, :, :5], w)) < 1e-12
    assert rel_err(gw, np.einsum("nihw,nohw->io", x, gy[:, :, :5])[:, :, None, None]) < 1e-12


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 2), (3, [(2, 0)], 2, 2, 1), (2, 0, 1, 1, 4),
])
def test_conv_transpose1d_matches_reference(rng, algo, stride, padding, output_padding, dilation, groups):
    x = rng.standard_normal((3, 4, 7))
    w = rng.standard_normal((4, 2, 3))
    y = fastconv.conv_transpose1d(x, w, stride=stride, padding=padding, output_padding=output_padding,
                                  groups=groups, dilation=dilation, algo=algo)
    pairs = [(padding, padding)] if isinstance(padding, int) else padding
    ref = ref_conv_transpose(x, w, (stride,), pairs, (output_padding,), (dilation,), groups)
    assert y.shape == ref.shape
    assert rel_err(y, ref) < 1e-12


@pytest.mark.parametrize("algo", ALGOS)
def test_depthwise_and_multiplier(rng, algo):
    x = rng.standard_normal((2, 5, 11, 10)).astype(np.float32)
    for mult in (1, 3):
        w = rng.standard_normal((5 * mult, 1, 5, 5)).astype(np.float32)
        y = fastconv.conv2d(x, w, stride=2, padding="same", groups=5, algo=algo)
        ref = ref_conv(x, w, (2, 2), same_pairs((11, 10), (5, 5), (2, 2), (1, 1)), (1, 1), 5)
        assert rel_err(y, ref) < 1e-5


def test_pointwise_1x1_is_matmul(rng):
    x = rng.standard_normal((3, 16, 7, 5))
    w = rng.standard_normal((8, 16, 1, 1))
    y = fastconv.conv2d(x, w, algo="im2col")
    ref = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)
    assert rel_err(y, ref) < 1e-13


def test_long_1d_signal_is_split_across_threads(rng):
    """A single long channel exercises the direct kernel's output-width tiling."""
    x = rng.standard_normal((1, 1, 20001)).astype(np.float32)
    w = np.full((1, 1, 3), 1 / 3, np.float32)
    y = fastconv.conv1d(x, w)
    np.testing.assert_allclose(y[0, 0], np.correlate(x[0, 0], w[0, 0], "valid"), rtol=1e-5, atol=1e-6)


def test_non_contiguous_inputs(rng):
    base = rng.standard_normal((2, 8, 12, 14)).astype(np.float32)
    x = base[:, ::2, ::-1, 1::2]                 # strided, reversed, offset view
    w = np.asfortranarray(rng.standard_normal((4, 4, 3, 3)).astype(np.float32))
    for algo in ALGOS:
        y = fastconv.conv2d(x, w, padding=1, algo=algo)
        assert rel_err(y, ref_conv(x, w, (1, 1), [(1, 1), (1, 1)], (1, 1), 1)) < 1e-5


def test_large_batch_tiles_the_workspace(rng, monkeypatch):
    """Small workspaces force row tiles and batch tiles on every GEMM path: results must not change."""
    from fastconv.backends import cpu
    x = rng.standard_normal((3, 4, 15, 13))
    w = rng.standard_normal((5, 4, 3, 3))
    ref = ref_conv(x, w, (2, 1), [(1, 1), (1, 1)], (1, 1), 1)
    for budget in (4 * 36 * 7 * 8, 36 * 13 * 8 * 3, 1):
        monkeypatch.setattr(cpu, "WORKSPACE_BYTES", budget)
        monkeypatch.setattr(cpu, "TILE_BYTES", budget)
        assert rel_err(fastconv.conv2d(x, w, stride=(2, 1), padding=1, algo="im2col"), ref) < 1e-12
        gy = rng.standard_normal(ref.shape)
        gx = fastconv.grad.conv2d_input(x.shape, w, gy, stride=(2, 1), padding=1, algo="im2col")
        gx_ref = fastconv.grad.conv2d_input(x.shape, w, gy, stride=(2, 1), padding=1, algo="direct")
        assert rel_err(gx, gx_ref) < 1e-12
        gw = fastconv.grad.conv2d_weight(x, w.shape, gy, stride=(2, 1), padding=1, algo="im2col")
        gw_ref = fastconv.grad.conv2d_weight(x, w.shape, gy, stride=(2, 1), padding=1, algo="direct")
        assert rel_err(gw, gw_ref) < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("groups", [1, 3])
def test_short_reduction_on_whole_image_columns(rng, monkeypatch, groups, dtype):
    """The whole-image path for short reductions (an RGB stem at full size) gives the same answer."""
    from fastconv.backends import cpu
    monkeypatch.setattr(cpu, "BATCHED_OUTPUT_BYTES", 0)
    x = rng.standard_normal((3, 6, 17, 15)).astype(dtype)
    w = rng.standard_normal((9, 6 // groups, 3, 3)).astype(dtype)
    for budget in (cpu.WORKSPACE_BYTES, 6 * 9 * 15 * 8 * 2, 1):   # whole batch, row tiles, one row
        monkeypatch.setattr(cpu, "WORKSPACE_BYTES", budget)
        y = fastconv.conv2d(x, w, stride=(2, 1), padding="same", groups=groups, algo="im2col")
        pads = same_pairs((17, 15), (3, 3), (2, 1), (1, 1))
        assert rel_err(y, ref_conv(x, w, (2, 1), pads, (1, 1), groups)) < (1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("sliver", [True, False])
@pytest.mark.parametrize("N,groups", [(1, 1), (1, 2), (3, 1), (3, 2)])
def test_long_reductions_on_whole_image_columns(rng, monkeypatch, sliver, N, groups):
    """Forward, input and weight gradients agree with the oracle whichever of the tiled and the
    whole-image GEMM paths the sliver rule (MIN_TILE_COLUMNS) sends them to."""
    from fastconv.backends import cpu
    from fastconv.kernels.cpu import _common
    monkeypatch.setattr(_common, "SERIAL_MACS", 0)              # the rule leaves tiny problems tiled
    monkeypatch.setattr(cpu, "MIN_TILE_COLUMNS", 10**9 if sliver else 0)
    monkeypatch.setattr(cpu, "SLIVER_MIN_ROWS", 1)
    monkeypatch.setattr(cpu, "TILE_BYTES", 256 if sliver else cpu.TILE_BYTES)   # < the weights (576 B)
    x = rng.standard_normal((N, 4, 11, 9))
    w = rng.standard_normal((6, 4 // groups, 3, 2))
    kw = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), groups=groups)
    pads = [(1, 2), (0, 1)]
    for budget in (cpu.WORKSPACE_BYTES, 4 * 6 * 8 * 8 * 2):     # whole batch, row tiles
        monkeypatch.setattr(cpu, "WORKSPACE_BYTES", budget)
        y = fastconv.conv2d(x, w, algo="im2col", **kw)
        assert rel_err(y, ref_conv(x, w, (2, 1), pads, (1, 2), groups)) < 1e-12
        gy = rng.standard_normal(y.shape)
        gx = fastconv.grad.conv2d_input(x.shape, w, gy, algo="im2col", **kw)
        assert rel_err(gx, fastconv.grad.conv2d_input(x.shape, w, gy, algo="direct", **kw)) < 1e-12
        gw = fastconv.grad.conv2d_weight(x, w.shape, gy, algo="im2col", **kw)
        assert rel_err(gw, fastconv.grad.conv2d_weight(x, w.shape, gy, algo="direct", **kw)) < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_image_products_long_and_short(rng, monkeypatch, dtype):
    """The whole-image paths' product runs on microgemm for a short reduction and on BLAS for a
    long one (``cpu._product``); both agree with the direct kernels, on whole images and bands."""
    from fastconv.backends import cpu
    from fastconv.kernels.cpu import _common
    monkeypatch.setattr(_common, "SERIAL_MACS", 0)
    monkeypatch.setattr(cpu, "MIN_TILE_COLUMNS", 10**9)
    monkeypatch.setattr(cpu, "SLIVER_MIN_ROWS", 1)
    monkeypatch.setattr(cpu, "TILE_BYTES", 256)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for cin, cout in ((40, 70), (4, 6)):            # K = 240 and 70 > SHORT_REDUCTION; 24 and 6 below
        x = rng.standard_normal((1, cin, 9, 7)).astype(dtype)
        w = rng.standard_normal((cout, cin, 3, 2)).astype(dtype)
        for budget in (cpu.WORKSPACE_BYTES, cin * 6 * 7 * 3 * x.itemsize):     # whole image, bands
            monkeypatch.setattr(cpu, "WORKSPACE_BYTES", budget)
            y = fastconv.conv2d(x, w, padding=1, algo="im2col")
            assert rel_err(y, fastconv.conv2d(x, w, padding=1, algo="direct")) < tol
            gy = rng.standard_normal(y.shape).astype(dtype)
            gx = fastconv.grad.conv2d_input(x.shape, w, gy, padding=1, algo="im2col")
            assert rel_err(gx, fastconv.grad.conv2d_input(x.shape, w, gy, padding=1, algo="direct")) < tol


@pytest.mark.parametrize("algo", ALGOS)
def test_full_padding_is_scipys_full_mode(rng, algo):
    from scipy import signal
    x, k = rng.standard_normal(50), rng.standard_normal(7)
    y = fastconv.conv1d(x[None, None], k[None, None], padding="full", algo=algo)[0, 0]
    assert y.shape == (56,) and rel_err(y, np.correlate(x, k, mode="full")) < 1e-12
    img, w = rng.standard_normal((9, 11)), rng.standard_normal((3, 4))
    y2 = fastconv.conv2d(img[None, None], w[None, None], padding="full", algo=algo)[0, 0]
    assert y2.shape == (11, 14) and rel_err(y2, signal.correlate2d(img, w, mode="full")) < 1e-12
    # with stride and dilation: k_eff - 1 on every side
    x4, w4 = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 2))
    y4 = fastconv.conv2d(x4, w4, stride=2, padding="full", dilation=2, groups=2, algo=algo)
    assert rel_err(y4, ref_conv(x4, w4, (2, 2), [(4, 4), (2, 2)], (2, 2), 2)) < 1e-12
    assert fastconv.output_shape(x4.shape, w4.shape, padding="full", groups=2) == (2, 6, 11, 9)


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
def test_padding_modes(rng, mode, np_mode):
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    y = fastconv.conv2d(x, w, padding=((1, 2), (2, 1)), padding_mode=mode)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (2, 1)), mode=np_mode)
    assert rel_err(y, ref_conv(xp, w, (1, 1), [(0, 0), (0, 0)], (1, 1), 1)) < 1e-12
    y1 = fastconv.conv1d(x[:, :, 0], w[:, :, 0], padding="same", padding_mode=mode)
    xp1 = np.pad(x[:, :, 0], ((0, 0), (0, 0), (1, 1)), mode=np_mode)
    assert rel_err(y1, ref_conv(xp1, w[:, :, 0], (1,), [(0, 0)], (1,), 1)) < 1e-12


def test_against_pytorch_when_installed(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 6, 13, 11)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    wt = rng.standard_normal((6, 2, 4, 4)).astype(np.float32)
    t = torch.from_numpy
    cases = [
        (fastconv.conv2d(x, w, stride=2, padding=1, dilation=2, groups=2),
         F.conv2d(t(x), t(w), stride=2, padding=1, dilation=2, groups=2)),
        (fastconv.conv_transpose2d(x, wt, stride=2, padding=1, output_padding=1, groups=3),
         F.conv_transpose2d(t(x), t(wt), stride=2, padding=1, output_padding=1, groups=3)),
        (fastconv.conv2d(x, w, padding=1, groups=2, padding_mode="reflect"),
         F.conv2d(F.pad(t(x), (1, 1, 1, 1), mode="reflect"), t(w), groups=2)),
        (fastconv.conv2d(x, w, padding="same", groups=2),
         F.conv2d(t(x), t(w), padding="same", groups=2)),
    ]
    for ours, theirs in cases:
        assert rel_err(ours, theirs.numpy()) < 1e-5
