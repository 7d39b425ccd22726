"""Bad input gets a clear error naming the argument and the shapes, before any kernel runs."""
import numpy as np
import pytest

import fastconv
from fastconv import grad

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize("call,exc,words", [
    (lambda: fastconv.conv2d(X[0], W), ValueError, ["input", "4 dimensions", "(4, 8, 8)"]),
    (lambda: fastconv.conv2d(X, W[0]), ValueError, ["weight", "(4, 3, 3)"]),
    (lambda: fastconv.conv2d(X, W[:, :3]), ValueError, ["(6, 3, 3, 3)", "(2, 4, 8, 8)"]),
    (lambda: fastconv.conv2d(X, W, groups=3), ValueError, ["groups=3", "4"]),
    (lambda: fastconv.conv2d(X, W[:5, :2], groups=2), ValueError, ["groups=2", "output channels 5"]),
    (lambda: fastconv.conv2d(X, W, groups=0), ValueError, ["groups"]),
    (lambda: fastconv.conv2d(X, W, stride=0), ValueError, ["stride", ">= 1"]),
    (lambda: fastconv.conv2d(X, W, stride=(1, 2, 3)), ValueError, ["stride"]),
    (lambda: fastconv.conv2d(X, W, dilation=-1), ValueError, ["dilation"]),
    (lambda: fastconv.conv2d(X, W, padding=-1), ValueError, ["padding", "non-negative"]),
    (lambda: fastconv.conv2d(X, W, padding="reflect"), ValueError, ["padding", "'full'"]),
    (lambda: fastconv.conv2d(X, W, padding=((1, 2, 3), (0, 0))), ValueError, ["padding pair"]),
    (lambda: fastconv.conv2d(X, W, dilation=5), ValueError, ["larger than the padded input", "(2, 4, 8, 8)"]),
    (lambda: fastconv.conv2d(X, np.zeros((6, 4, 9, 9), np.float32)), ValueError, ["larger than the padded"]),
    (lambda: fastconv.conv2d(X.astype(np.int32), W), TypeError, ["input", "int32", "float32 or float64"]),
    (lambda: fastconv.conv2d(X.astype(np.float16), W), TypeError, ["float16"]),
    (lambda: fastconv.conv2d(X, W.astype(np.float64)), TypeError, ["float32", "float64", "differ"]),
    (lambda: fastconv.conv2d(X, W, bias=np.zeros(5, np.float32)), ValueError, ["bias", "(6,)", "(5,)"]),
    (lambda: fastconv.conv2d(X, W, algo="magic"), ValueError, ["algo", "magic"]),
    (lambda: fastconv.conv2d(X, W, padding=8, padding_mode="reflect"), ValueError, ["reflect", "padding <= 7"]),
    (lambda: fastconv.conv2d(X, W, padding_mode="mirror"), ValueError, ["padding_mode"]),
    (lambda: fastconv.conv2d(np.zeros((0, 4, 8, 8), np.float32), W), ValueError, ["empty"]),
    (lambda: fastconv.conv_transpose2d(X, np.zeros((3, 2, 3, 3), np.float32)), ValueError, ["C_in=4"]),
    (lambda: fastconv.conv_transpose2d(X, W[:4], stride=2, output_padding=2), ValueError, ["output_padding"]),
    (lambda: fastconv.conv_transpose2d(X, W[:4], padding="same"), ValueError, ["transposed", "'same'"]),
    (lambda: fastconv.conv_transpose2d(X, W[:4], padding=9), ValueError, ["too large"]),
    (lambda: fastconv.conv1d(X, W), ValueError, ["3 dimensions", "(N, C, L)"]),
    (lambda: grad.conv2d_input(X.shape, W, np.zeros((2, 6, 5, 5), np.float32)), ValueError,
     ["grad_output", "(2, 6, 5, 5)", "(2, 6, 6, 6)"]),
    (lambda: grad.conv2d_weight(X, (6, 4, 3), np.zeros((2, 6, 6, 6), np.float32)), ValueError, ["weight_shape"]),
    (lambda: grad.conv2d_input((2, 4, 8), W, np.zeros((2, 6, 6, 6), np.float32)), ValueError, ["input_shape"]),
    (lambda: fastconv.conv_matrix(np.zeros((2, 3)), (3, 4, 4)), ValueError, ["weight"]),
    (lambda: fastconv.conv_matrix(W, (4, 4)), ValueError, ["input_shape"]),
])
def test_bad_input_is_named(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"


def test_inputs_are_never_modified(rng):
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    copies = [a.copy() for a in (x, w, b)]
    for algo in ("direct", "im2col"):
        y = fastconv.conv2d(x, w, b, stride=2, padding=1, groups=2, algo=algo)
        fastconv.conv_transpose2d(x, w, b, stride=2, padding=1, groups=2, algo=algo)
        grad.conv2d_input(x.shape, w, y, stride=2, padding=1, groups=2, algo=algo)
        grad.conv2d_weight(x, w.shape, y, stride=2, padding=1, groups=2, algo=algo)
        fastconv.conv2d(x, w, b, padding=1, groups=2, padding_mode="reflect", algo=algo)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


def test_lists_and_float_arrays_are_accepted():
    y = fastconv.conv1d([[[1.0, 2.0, 3.0, 4.0]]], [[[1.0, 1.0]]])
    np.testing.assert_array_equal(y, [[[3.0, 5.0, 7.0]]])


def test_no_nan_from_finite_extremes():
    """Large but finite float32 values, huge dilation and padding never produce NaN."""
    x = np.full((1, 2, 5, 5), 1e18, np.float32)
    w = np.full((2, 2, 2, 2), 1e-18, np.float32)
    for algo in ("direct", "im2col"):
        y = fastconv.conv2d(x, w, padding=7, dilation=4, algo=algo)
        assert np.isfinite(y).all()
