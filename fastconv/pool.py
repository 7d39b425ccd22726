"""2-D pooling on arrays, forward and backward: max (with argmax), average, adaptive average.

Each pooled map is assembled tap by tap: for a kh x kw window there are kh*kw strided views of
the padded input, one per tap (i, j), and the window reduction is an elementwise reduction
over those views. That is the ``sliding_window_view`` picture without materialising the
windows, it runs unchanged on NumPy and CuPy, and the backward is the same loop with ``+=``
into the same views, which accumulates correctly where windows overlap (stride < kernel).

Conventions follow PyTorch (``ceil_mode=False``): max pooling pads with -inf and returns the
tap index of the first maximum of each window (ties go to the first tap in row-major order,
NaN wins); average pooling pads with zeros and divides by kh*kw (``count_include_pad=True``)
or by the number of in-image taps.

Example:
    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> y, idx = max_pool2d(x, 2)
    >>> y[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
"""
from __future__ import annotations

import numpy as np

from fastconv.backends import get_xp
from fastconv.functional import check_array
from fastconv.geometry import _positive, _tuple, conv_out_size


def pool_geometry(x_shape, kernel_size, stride=None, padding=0, name: str = "pool"):
    """Validated (kernel, stride, padding, out_size) pairs of a 2-D pooling of ``x_shape``.

    ``stride=None`` means stride = kernel (PyTorch's default); padding may be at most half the
    kernel on each axis, so that no window lies wholly in the padding.
    """
    x_shape = tuple(int(s) for s in x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"{name}: input must be 4-D (N, C, H, W), got shape {x_shape}")
    k = _positive(kernel_size, 2, "kernel_size")
    s = k if stride is None else _positive(stride, 2, "stride")
    p = _tuple(padding, 2, "padding")
    for ax in range(2):
        if p[ax] < 0 or 2 * p[ax] > k[ax]:
            raise ValueError(f"{name}: padding must be between 0 and half the kernel size, got padding={p} "
                             f"for kernel_size={k}")
    out = tuple(conv_out_size(x_shape[2 + ax], k[ax], s[ax], 1, (p[ax], p[ax])) for ax in range(2))
    if min(out) < 1:
        raise ValueError(f"{name}: kernel_size={k} with padding={p} is larger than the input; input "
                         f"shape {x_shape}")
    return k, s, p, out


def _taps(k):
    return [(i, j) for i in range(k[0]) for j in range(k[1])]


def _view(a, i, j, s, out):
    """The strided view of padded ``a`` that tap (i, j) of every window reads."""
    return a[:, :, i:i + s[0] * (out[0] - 1) + 1:s[0], j:j + s[1] * (out[1] - 1) + 1:s[1]]


def _pad(x, p, value):
    xp = get_xp(x)
    if p == (0, 0):
        return x
    return xp.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=value)


def _crop(gp, p, shape):
    return gp[:, :, p[0]:p[0] + shape[2], p[1]:p[1] + shape[3]]


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling of x (N, C, H, W): returns (y, argmax), argmax being each window's tap index.

    Args:
        x: (N, C, H, W) float32 or float64.
        kernel_size, stride (default: kernel_size), padding: int or (h, w).

    Returns:
        y (N, C, Ho, Wo) and the int32 tap index ``i * kw + j`` of the first maximum.
    """
    x = check_array(x, "input")
    xp = get_xp(x)
    k, s, p, out = pool_geometry(x.shape, kernel_size, stride, padding, "max_pool2d")
    xpad = _pad(x, p, -np.inf)
    y = idx = None
    for t, (i, j) in enumerate(_taps(k)):
        v = _view(xpad, i, j, s, out)
        if y is None:
            y, idx = v.copy(), xp.zeros(v.shape, xp.int32)
            continue
        # strict '>' keeps the first maximum; a NaN beats any number, as in PyTorch
        better = (v > y) | (xp.isnan(v) & ~xp.isnan(y))
        y = xp.where(better, v, y)
        idx[better] = t
    return y, idx


def max_pool2d_backward(grad_output, argmax, x_shape, kernel_size, stride=None, padding=0):
    """Route every output gradient to the one input pixel its window's maximum came from."""
    xp = get_xp(grad_output)
    k, s, p, out = pool_geometry(x_shape, kernel_size, stride, padding, "max_pool2d")
    n, c, h, w = x_shape
    gp = xp.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), grad_output.dtype)
    for t, (i, j) in enumerate(_taps(k)):
        _view(gp, i, j, s, out)[...] += xp.where(argmax == t, grad_output, 0)
    return xp.ascontiguousarray(_crop(gp, p, x_shape))


def _divisor(x_shape, k, s, p, out, count_include_pad, xp, dtype):
    if count_include_pad:
        return k[0] * k[1]
    counts = []
    for ax in range(2):
        lo = np.arange(out[ax]) * s[ax] - p[ax]
        n = np.minimum(lo + k[ax], x_shape[2 + ax]) - np.maximum(lo, 0)
        counts.append(n)
    return xp.asarray(np.outer(counts[0], counts[1]).astype(dtype))


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad: bool = True):
    """Average pooling of x (N, C, H, W) (zero padding; see ``count_include_pad``).

    Args:
        count_include_pad: divide by kh*kw (True, PyTorch's default) or by the number of taps
            that fall inside the image (False).
    """
    x = check_array(x, "input")
    xp = get_xp(x)
    k, s, p, out = pool_geometry(x.shape, kernel_size, stride, padding, "avg_pool2d")
    xpad = _pad(x, p, 0)
    y = xp.zeros(x.shape[:2] + out, x.dtype)
    for i, j in _taps(k):
        y += _view(xpad, i, j, s, out)
    return y / _divisor(x.shape, k, s, p, out, count_include_pad, xp, x.dtype)


def avg_pool2d_backward(grad_output, x_shape, kernel_size, stride=None, padding=0,
                        count_include_pad: bool = True):
    """Spread every output gradient evenly over its window (the adjoint of :func:`avg_pool2d`)."""
    xp = get_xp(grad_output)
    k, s, p, out = pool_geometry(x_shape, kernel_size, stride, padding, "avg_pool2d")
    n, c, h, w = x_shape
    g = grad_output / _divisor(x_shape, k, s, p, out, count_include_pad, xp, grad_output.dtype)
    gp = xp.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), grad_output.dtype)
    for i, j in _taps(k):
        _view(gp, i, j, s, out)[...] += g
    return xp.ascontiguousarray(_crop(gp, p, x_shape))


def adaptive_pool_matrix(n_in: int, n_out: int, dtype=np.float32) -> np.ndarray:
    """The (n_out, n_in) averaging matrix of PyTorch's adaptive average pooling along one axis.

    Bin i covers [floor(i * n_in / n_out), ceil((i + 1) * n_in / n_out)); bins may overlap or
    differ in size when n_out does not divide n_in. A 2-D adaptive pool is ``P_h @ x @ P_w.T``
    because the mean over a rectangle is the mean over rows of the mean over columns.
    """
    if n_out < 1:
        raise ValueError(f"adaptive pooling output size must be >= 1, got {n_out}")
    m = np.zeros((n_out, n_in), dtype)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m
