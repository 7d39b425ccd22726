"""The FFT convolution (kernels/cpu/fft.py) and the cost model that lets ``auto`` pick it.

Every geometry of the oracle and gradient tests also runs with algo='fft' (test_conv_oracle.py,
test_conv_grad.py, test_properties.py); here: large kernels, both parities of the FFT size,
float32 accuracy, and which convolutions ``auto`` sends to the FFT.
"""
import numpy as np
import pytest

import fastconv
from fastconv.backends import cpu
from fastconv.geometry import conv_geometry
from fastconv.kernels.cpu import fft
from oracle import ref_conv, rel_err


@pytest.mark.parametrize("W", [38, 41])        # FFT widths 45 and 48: with and without a Nyquist column
@pytest.mark.parametrize("dilation", [1, 2])
def test_large_kernels_against_the_oracle(rng, W, dilation):
    x = rng.standard_normal((2, 3, 23, W))
    w = rng.standard_normal((4, 3, 9, 7))
    kw = dict(padding=((4, 3), (2, 5)), dilation=dilation)
    pads = [(4, 3), (2, 5)]
    y = fastconv.conv2d(x, w, algo="fft", **kw)
    assert rel_err(y, ref_conv(x, w, (1, 1), pads, (dilation, dilation), 1)) < 1e-12
    gy = rng.standard_normal(y.shape)
    gx = fastconv.grad.conv2d_input(x.shape, w, gy, algo="fft", **kw)
    gw = fastconv.grad.conv2d_weight(x, w.shape, gy, algo="fft", **kw)
    assert rel_err(gx, fastconv.grad.conv2d_input(x.shape, w, gy, algo="direct", **kw)) < 1e-12
    assert rel_err(gw, fastconv.grad.conv2d_weight(x, w.shape, gy, algo="direct", **kw)) < 1e-12
    assert {fft.plane_shape(23, W, pads)[1] % 2 for W in (38, 41)} == {0, 1}


def test_float32_error_is_that_of_a_gemm(rng):
    """Spectra carry float32 rounding like any sum: within 1e-6 of the output's scale."""
    x = rng.standard_normal((1, 8, 48, 48)).astype(np.float32)
    w = rng.standard_normal((8, 8, 15, 15)).astype(np.float32)
    ref = ref_conv(x.astype(np.float64), w.astype(np.float64), (1, 1), [(7, 7), (7, 7)], (1, 1), 1)
    assert rel_err(fastconv.conv2d(x, w, padding="same", algo="fft"), ref) < 1e-6


def test_one_dimensional_long_kernel(rng):
    x = rng.standard_normal((2, 4, 300))
    w = rng.standard_normal((3, 4, 41))
    y = fastconv.conv1d(x, w, padding="same", algo="fft")
    assert rel_err(y, fastconv.conv1d(x, w, padding="same", algo="direct")) < 1e-12


@pytest.mark.parametrize("shape,kernel,want", [
    ((1, 16, 64, 64), (16, 16, 15, 15), "fft"),       # thin GEMM, long kernel: spectra are cheap
    ((8, 16, 64, 64), (16, 16, 11, 11), "fft"),
    ((1, 16, 64, 64), (16, 16, 7, 7), "im2col"),      # the kernel spectra outweigh 49 taps
    ((1, 64, 56, 56), (64, 64, 9, 9), "im2col"),      # 4096 kernel spectra of 64x33 frequencies
    ((1, 3, 224, 224), (64, 3, 11, 11), "im2col"),    # 67 planes of 240x240: transforms dominate
    ((8, 64, 56, 56), (64, 64, 3, 3), "winograd"),
])
def test_auto_picks_the_fft_by_its_cost_model(shape, kernel, want):
    assert cpu.choose_algo(conv_geometry(shape, kernel, padding="same")) == want


def test_strided_geometries_never_pick_the_fft():
    g = conv_geometry((1, 16, 64, 64), (16, 16, 15, 15), stride=2, padding="same")
    assert not cpu.fft_pays(g) and cpu.choose_algo(g) == "im2col"


def test_batches_are_transformed_in_bounded_chunks(rng, monkeypatch):
    """With room for one image at a time, every image still lands in its place (and the weight
    gradient sums over all of them)."""
    monkeypatch.setattr(fft, "CHUNK_BYTES", 1)
    assert fft._image_chunks(3, 4, (8, 8), 8) == [(0, 1), (1, 2), (2, 3)]
    x = rng.standard_normal((3, 4, 11, 10))
    w = rng.standard_normal((6, 2, 5, 4))
    kw = dict(stride=(2, 1), padding=((2, 1), (1, 2)), dilation=(1, 2), groups=2)
    y = fastconv.conv2d(x, w, algo="fft", **kw)
    assert rel_err(y, fastconv.conv2d(x, w, algo="direct", **kw)) < 1e-12
    gy = rng.standard_normal(y.shape)
    for fn, args in ((fastconv.grad.conv2d_input, (x.shape, w, gy)), (fastconv.grad.conv2d_weight, (x, w.shape, gy))):
        assert rel_err(fn(*args, algo="fft", **kw), fn(*args, algo="direct", **kw)) < 1e-12
