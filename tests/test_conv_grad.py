"""Gradients by the adjoint identity and by float64 central differences.

<conv(x), v> = <x, grad_input(v)> = <w, grad_weight(x, v)> holds exactly for a linear map, so
in float64 the two sides agree to rounding (relative 1e-12). Central differences along a random
direction check the same gradients against the definition of a derivative.
"""
import itertools

import numpy as np
import pytest

import fastconv
from fastconv import grad

ALGOS = ["direct", "im2col", "fft"]
GEOMS_2D = list(itertools.product([1, 2, (1, 3)], [0, "same", ((2, 0), (1, 2))], [1, 2], [1, 2]))


def _close(a, b, tol=1e-12):
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-300)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("stride,padding,dilation,groups", GEOMS_2D)
def test_conv2d_adjoint_identity(rng, algo, stride, padding, dilation, groups):
    x = rng.standard_normal((2, 4, 10, 9))
    w = rng.standard_normal((6, 4 // groups, 3, 2))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, algo=algo)
    y = fastconv.conv2d(x, w, **kw)
    v = rng.standard_normal(y.shape)
    lhs = np.vdot(y, v)
    assert _close(lhs, np.vdot(x, grad.conv2d_input(x.shape, w, v, **kw)))
    assert _close(lhs, np.vdot(w, grad.conv2d_weight(x, w.shape, v, **kw)))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("stride,padding,dilation,groups", list(itertools.product([1, 3], [0, "same"], [1, 2], [1, 2])))
def test_conv1d_adjoint_identity(rng, algo, stride, padding, dilation, groups):
    x = rng.standard_normal((3, 4, 23))
    w = rng.standard_normal((2, 4 // groups, 5))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, algo=algo)
    y = fastconv.conv1d(x, w, **kw)
    v = rng.standard_normal(y.shape)
    lhs = np.vdot(y, v)
    assert _close(lhs, np.vdot(x, grad.conv1d_input(x.shape, w, v, **kw)))
    assert _close(lhs, np.vdot(w, grad.conv1d_weight(x, w.shape, v, **kw)))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 2), (3, ((0, 2), (1, 1)), (2, 1), 2, 1), (2, 0, 1, 3, 2),
])
def test_conv_transpose2d_adjoint_identity(rng, algo, stride, padding, output_padding, dilation, groups):
    x = rng.standard_normal((2, 4, 5, 4))
    w = rng.standard_normal((4, 3, 3, 3))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
              dilation=dilation, algo=algo)
    y = fastconv.conv_transpose2d(x, w, **kw)
    v = rng.standard_normal(y.shape)
    lhs = np.vdot(y, v)
    assert _close(lhs, np.vdot(x, grad.conv_transpose2d_input(x.shape, w, v, **kw)))
    assert _close(lhs, np.vdot(w, grad.conv_transpose2d_weight(x, w.shape, v, **kw)))


@pytest.mark.parametrize("algo", ALGOS)
def test_conv_transpose1d_adjoint_identity(rng, algo):
    x = rng.standard_normal((2, 6, 9))
    w = rng.standard_normal((6, 1, 4))
    kw = dict(stride=2, padding=1, output_padding=1, groups=3, dilation=1, algo=algo)
    y = fastconv.conv_transpose1d(x, w, **kw)
    v = rng.standard_normal(y.shape)
    lhs = np.vdot(y, v)
    assert _close(lhs, np.vdot(x, grad.conv_transpose1d_input(x.shape, w, v, **kw)))
    assert _close(lhs, np.vdot(w, grad.conv_transpose1d_weight(x, w.shape, v, **kw)))


def test_transposed_conv_is_the_input_gradient(rng):
    """conv_transpose2d(v, w) == grad.conv2d_input(x.shape, w, v) for the matching geometry."""
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((5, 3, 3, 3))
    v = rng.standard_normal(fastconv.output_shape(x.shape, w.shape, stride=2, padding=1))
    a = fastconv.conv_transpose2d(v, w, stride=2, padding=1)
    b = grad.conv2d_input(x.shape, w, v, stride=2, padding=1)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d", "conv1d"])
def test_central_differences_along_random_directions(rng, op):
    """d/dt L(x + t dx, w + t dw) at t=0 equals <gx, dx> + <gw, dw> + <gb, db> for L = <f(x, w, b), v>."""
    if op == "conv2d":
        x, w, kw = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3)), dict(stride=2, padding="same", groups=2)
        f = lambda x, w, b: fastconv.conv2d(x, w, b, **kw)  # noqa: E731
        gi = lambda v: grad.conv2d_input(x.shape, w, v, **kw)  # noqa: E731
        gw = lambda v: grad.conv2d_weight(x, w.shape, v, **kw)  # noqa: E731
        b = rng.standard_normal(6)
    elif op == "conv1d":
        x, w, kw = rng.standard_normal((2, 3, 15)), rng.standard_normal((4, 3, 3)), dict(dilation=2, padding=1)
        f = lambda x, w, b: fastconv.conv1d(x, w, b, **kw)  # noqa: E731
        gi = lambda v: grad.conv1d_input(x.shape, w, v, **kw)  # noqa: E731
        gw = lambda v: grad.conv1d_weight(x, w.shape, v, **kw)  # noqa: E731
        b = rng.standard_normal(4)
    else:
        x, w, kw = rng.standard_normal((2, 4, 4, 5)), rng.standard_normal((4, 3, 4, 4)), dict(stride=2, padding=1)
        f = lambda x, w, b: fastconv.conv_transpose2d(x, w, b, **kw)  # noqa: E731
        gi = lambda v: grad.conv_transpose2d_input(x.shape, w, v, **kw)  # noqa: E731
        gw = lambda v: grad.conv_transpose2d_weight(x, w.shape, v, **kw)  # noqa: E731
        b = rng.standard_normal(3)
    v = rng.standard_normal(f(x, w, b).shape)
    loss = lambda x, w, b: np.vdot(f(x, w, b), v) + 0.5 * np.sum(f(x, w, b) ** 2)  # noqa: E731
    y = f(x, w, b)
    g_out = v + y                                     # dL/dy of the loss above
    dx, dw, db = rng.standard_normal(x.shape), rng.standard_normal(w.shape), rng.standard_normal(b.shape)
    h = 1e-6
    numeric = (loss(x + h * dx, w + h * dw, b + h * db) - loss(x - h * dx, w - h * dw, b - h * db)) / (2 * h)
    analytic = np.vdot(gi(g_out), dx) + np.vdot(gw(g_out), dw) + np.vdot(grad.bias(g_out), db)
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_pad_adjoint_identity(rng, mode):
    x = rng.standard_normal((2, 3, 6, 5))
    pairs = ((2, 1), (3, 0))
    y = fastconv.pad(x, pairs, mode)
    v = rng.standard_normal(y.shape)
    from fastconv.functional import pad_adjoint
    assert _close(np.vdot(y, v), np.vdot(x, pad_adjoint(v, pairs, mode, x.shape)))


def test_float32_gradients_close_to_float64(rng):
    x = rng.standard_normal((4, 8, 12, 12))
    w = rng.standard_normal((8, 8, 3, 3))
    v = rng.standard_normal((4, 8, 12, 12))
    for algo in ALGOS:
        g64 = grad.conv2d_weight(x, w.shape, v, padding=1, algo=algo)
        g32 = grad.conv2d_weight(x.astype(np.float32), w.shape, v.astype(np.float32), padding=1, algo=algo)
        assert np.abs(g32 - g64).max() / np.abs(g64).max() < 1e-5
        i64 = grad.conv2d_input(x.shape, w, v, padding=1, algo=algo)
        i32 = grad.conv2d_input(x.shape, w.astype(np.float32), v.astype(np.float32), padding=1, algo=algo)
        assert np.abs(i32 - i64).max() / np.abs(i64).max() < 1e-5
