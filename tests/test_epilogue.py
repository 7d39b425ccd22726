"""The fused epilogue of a convolution: bias and activation applied in the convolution's own pass."""
import numpy as np
import pytest

import fastconv
from fastconv import nn, ops
from fastconv.autograd import Tensor

CLIP = {"relu": (0, np.inf), "relu6": (0, 6)}
CALLS = {
    "conv1d": (fastconv.conv1d, (2, 3, 17), (4, 3, 5), dict(padding="same")),
    "conv2d": (fastconv.conv2d, (2, 3, 9, 8), (5, 3, 3, 3), dict(stride=2, padding=1)),
    "conv_transpose1d": (fastconv.conv_transpose1d, (2, 3, 7), (3, 4, 3), dict(stride=2)),
    "conv_transpose2d": (fastconv.conv_transpose2d, (1, 3, 5, 6), (3, 2, 4, 4), dict(stride=2, padding=1)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["relu", "relu6"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_fused_activation_equals_clip_of_the_convolution(rng, name, with_bias, activation, dtype):
    fn, xs, ws, kw = CALLS[name]
    x = (3 * rng.standard_normal(xs)).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    cout = ws[0] if name.startswith("conv1d") or name == "conv2d" else ws[1]
    b = rng.standard_normal(cout).astype(dtype) if with_bias else None
    plain = fn(x, w, b, **kw)
    fused = fn(x, w, b, activation=activation, **kw)
    lo, hi = CLIP[activation]
    assert fused.dtype == dtype
    np.testing.assert_array_equal(fused, np.clip(plain, lo, hi))
    assert (plain > 6).any() and (plain < 0).any()      # both clips were exercised


def test_nan_stays_nan_through_the_epilogue(rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    x[0, 0, 2, 2] = np.nan
    y = fastconv.conv2d(x, rng.standard_normal((3, 2, 3, 3)).astype(np.float32), np.ones(3, np.float32),
                        activation="relu6")
    assert np.isnan(y[:, :, :3, :3]).all() and not np.isnan(y[:, :, 3:, 3:]).any()


def test_unknown_activation_is_named_and_inputs_are_untouched(rng):
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    x0, w0 = x.copy(), w.copy()
    for call in (lambda: fastconv.conv2d(x, w, activation="gelu"),
                 lambda: fastconv.conv_transpose2d(x, w.transpose(1, 0, 2, 3), activation="tanh"),
                 lambda: nn.Conv2d(2, 3, 3, activation="swish")):
        with pytest.raises(ValueError, match=r"activation must be None or one of \('relu', 'relu6'\)"):
            call()
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_conv_layer_with_activation(rng):
    layer = nn.Conv2d(3, 4, 3, padding=1, activation="relu6")
    assert "activation='relu6'" in repr(layer)
    x = Tensor((4 * rng.standard_normal((2, 3, 7, 7))).astype(np.float32), requires_grad=True)
    y = layer(x)
    plain = nn.Conv2d(3, 4, 3, padding=1)
    plain.weight, plain.bias = layer.weight, layer.bias
    ref = ops.relu6(plain(Tensor(x.data, requires_grad=True)))
    np.testing.assert_array_equal(y.data, ref.data)
    y.sum().backward()
    x2 = Tensor(x.data.copy(), requires_grad=True)
    ops.relu6(plain(x2)).sum().backward()
    np.testing.assert_allclose(x.grad, x2.grad, rtol=1e-6, atol=1e-6)


# every path of the CPU backend's forward: fused in the kernel (winograd, depthwise, tiled GEMM)
# or applied after it (direct, pointwise, whole-image GEMM of a short reduction)
PATHS = {
    "winograd": ((2, 6, 9, 10), (5, 6, 3, 3), dict(padding=1, algo="winograd")),
    "depthwise": ((2, 6, 9, 10), (12, 1, 3, 3), dict(stride=2, padding="same", groups=6)),
    "tiled_gemm": ((2, 6, 9, 10), (5, 6, 3, 3), dict(padding=1, algo="im2col")),
    "direct": ((2, 6, 9, 10), (4, 3, 3, 3), dict(padding=1, groups=2, algo="direct")),
    "pointwise": ((2, 6, 9, 10), (5, 6, 1, 1), dict()),
    "short_reduction": ((1, 3, 300, 300), (16, 3, 3, 3), dict(padding=1)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_forward_path_applies_the_epilogue(rng, path, dtype):
    xs, ws, kw = PATHS[path]
    x = (3 * rng.standard_normal(xs)).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    plain = fastconv.conv2d(x, w, **kw)
    for bias in (None, b):
        for activation, (lo, hi) in [(None, (-np.inf, np.inf))] + list(CLIP.items()):
            ref = np.clip(plain + (0 if bias is None else b[:, None, None]), lo, hi)
            y = fastconv.conv2d(x, w, bias, activation=activation, **kw)
            np.testing.assert_allclose(y, ref, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                       atol=1e-5 if dtype == np.float32 else 1e-12)
