"""Random convolutions against PyTorch (float64) on shapes large enough to cross the engine's rules.

The oracle tests use small arrays; these draw batches up to 8, up to 48 channels per group and
images up to 40 px, so that the serial twins and the parallel kernels, several column tiles per
image, Winograd's ``auto`` rule and the FFT all get their turn. Forward, input gradient and
weight gradient of ``conv2d`` and ``conv_transpose2d`` are compared with ``torch.autograd``, for
every CPU algorithm that covers the geometry. Skipped when PyTorch is not installed.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import grad
from oracle import rel_err

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float32: 5e-5, np.float64: 1e-10}      # relative to the result's largest entry
ALGOS = ["auto", "direct", "im2col", "fft", "winograd"]


@st.composite
def geometries(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin_g, cout_g = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    k = draw(st.sampled_from([(1, 1), (3, 3), (3, 3), (4, 4), (5, 5), (7, 7), (2, 5)]))
    stride = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (3, 1)]))
    dil = draw(st.sampled_from([(1, 1), (1, 1), (1, 1), (2, 2)]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    pads = tuple((draw(st.integers(0, kk - 1)), draw(st.integers(0, kk - 1))) for kk in k)
    n = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return n, groups, cin_g, cout_g, k, stride, dil, size, pads, dtype


def _fits(size, k, dil, pads):
    return all(s + lo + hi >= d * (kk - 1) + 1 for s, kk, d, (lo, hi) in zip(size, k, dil, pads))


def _covers(algo, k, stride, dil, groups):
    return algo != "winograd" or (k == (3, 3) and stride == (1, 1) and dil == (1, 1) and groups == 1)


@settings(max_examples=40, deadline=None)
@given(geometries(), st.sampled_from(ALGOS))
def test_conv2d_and_gradients_match_pytorch(geometry, algo):
    n, groups, cin_g, cout_g, k, stride, dil, size, pads, dtype = geometry
    assume(_fits(size, k, dil, pads) and _covers(algo, k, stride, dil, groups))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, groups * cin_g) + size).astype(dtype)
    w = rng.standard_normal((groups * cout_g, cin_g) + k).astype(dtype)
    kw = dict(stride=stride, padding=pads, dilation=dil, groups=groups)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    (lo_h, hi_h), (lo_w, hi_w) = pads
    yt = F.conv2d(F.pad(xt, (lo_w, hi_w, lo_h, hi_h)), wt, stride=stride, dilation=dil, groups=groups)
    gy = rng.standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    tol = TOL[dtype] * (20 if dtype == np.float32 and algo in ("winograd", "fft") else 1)
    assert rel_err(fastconv.conv2d(x, w, algo=algo, **kw), yt.detach().numpy()) < tol
    assert rel_err(grad.conv2d_input(x.shape, w, gy, algo=algo, **kw), xt.grad.numpy()) < tol
    if algo != "winograd":        # Winograd's weight gradient is im2col's
        assert rel_err(grad.conv2d_weight(x, w.shape, gy, algo=algo, **kw), wt.grad.numpy()) < tol


@settings(max_examples=30, deadline=None)
@given(geometries(), st.sampled_from(ALGOS[:4]), st.data())
def test_conv_transpose2d_and_gradients_match_pytorch(geometry, algo, data):
    n, groups, cin_g, cout_g, k, stride, dil, size, pads, dtype = geometry
    # PyTorch's transposed convolution takes symmetric padding: the low side of each pair
    padding = tuple(min(lo, d * (kk - 1)) for (lo, _), kk, d in zip(pads, k, dil))
    op = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil))
    out = [(n - 1) * s_ - 2 * p + d * (kk - 1) + 1 + o
           for n, s_, p, d, kk, o in zip(size, stride, padding, dil, k, op)]
    assume(min(out) >= 1)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((n, groups * cin_g) + size).astype(dtype)
    w = rng.standard_normal((groups * cin_g, cout_g) + k).astype(dtype)
    kw = dict(stride=stride, padding=padding, output_padding=op, groups=groups, dilation=dil)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    yt = F.conv_transpose2d(xt, wt, **kw)
    gy = rng.standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    tol = TOL[dtype] * (20 if dtype == np.float32 and algo == "fft" else 1)
    assert rel_err(fastconv.conv_transpose2d(x, w, algo=algo, **kw), yt.detach().numpy()) < tol
    assert rel_err(grad.conv_transpose2d_input(x.shape, w, gy, algo=algo, **kw), xt.grad.numpy()) < tol
    assert rel_err(grad.conv_transpose2d_weight(x, w.shape, gy, algo=algo, **kw), wt.grad.numpy()) < tol
