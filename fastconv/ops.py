"""Differentiable operations on Tensors: convolutions, activations, losses, pooling, normalisation.

Each op computes its forward on arrays and states its backward on arrays. The convolutions
call only the public array API (``fastconv.functional`` forward, ``fastconv.grad`` gradients),
so they run wherever that API runs; elementwise math uses the array's own module (NumPy or
CuPy). Several ops are compositions of Tensor ops (batch_norm, upsample, mse_loss): their
gradients then come for free and are checked like every other.

Example:
    >>> import numpy as np
    >>> from fastconv.autograd import Tensor
    >>> x = Tensor(np.random.rand(2, 1, 8, 8).astype(np.float32))
    >>> w = Tensor(np.random.rand(4, 1, 3, 3).astype(np.float32), requires_grad=True)
    >>> loss = relu(conv2d(x, w, padding=1)).mean()
    >>> loss.backward()
    >>> w.grad.shape
    (4, 1, 3, 3)
"""
from __future__ import annotations

import contextlib

import numpy as np

from fastconv import functional as F
from fastconv import grad as G
from fastconv import pool as P
from fastconv.autograd import Tensor, concatenate, is_grad_enabled, stack  # noqa: F401  (re-exported)
from fastconv.backends import get_backend, get_xp
from fastconv.geometry import conv_geometry

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "pad", "linear", "relu", "relu6",
           "guided_rectifiers", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "cross_entropy", "mse_loss",
           "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "global_avg_pool2d", "batch_norm",
           "dropout", "upsample", "concatenate", "stack"]


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _data(x):
    return None if x is None else x.data


# ----------------------------------------------------------------------------- convolutions
def pad(x, pairs, mode: str = "zeros") -> Tensor:
    """Pad the trailing ``len(pairs)`` axes with (low, high) ``pairs``: 'zeros', 'reflect', 'replicate', 'circular'.

    The gradient folds the padded border back onto the input (``functional.pad_adjoint``).

    Example:
        >>> pad(Tensor(np.arange(3.0)), [(1, 2)], 'reflect').data
        array([1., 0., 1., 2., 1., 0.])
    """
    x = _t(x)
    pairs = [tuple(int(v) for v in p) for p in pairs]
    shape = x.shape
    return Tensor._make(F.pad(x.data, pairs, mode), (x,),
                        lambda g: (F.pad_adjoint(g, pairs, mode, shape),), f"pad_{mode}")


_guided = False


@contextlib.contextmanager
def guided_rectifiers():
    """Within this block, rectifiers pass back only positive gradients: guided backpropagation.

    Affects the backward of :func:`relu`, :func:`relu6` and the convolutions' fused
    activations, run while the block is open: each lets through ``max(g, 0)`` where its input
    was in the linear range (the ordinary backward lets through ``g``). Everything else is
    unchanged. :func:`fastconv.interpret.guided_backprop` runs a model's gradient inside it.

    Example:
        >>> x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
        >>> with guided_rectifiers():
        ...     (relu(x) * Tensor(np.array([-1.0, 3.0]))).sum().backward()
        >>> x.grad
        array([0., 3.])

    Reference: Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All
    Convolutional Net", ICLR workshop 2015.
    """
    global _guided
    before, _guided = _guided, True
    try:
        yield
    finally:
        _guided = before


def _rectified(g):
    """The gradient a rectifier receives: g, or max(g, 0) inside :func:`guided_rectifiers`."""
    return get_xp(g).maximum(g, 0) if _guided else g


def _through_activation(y, activation):
    """g -> the gradient before the fused activation: g where the activation passed its input
    (lo < y < hi), else 0; computed from the op's output y in one pass when backward runs
    (like PyTorch's ReLU, the output must not be modified in place before that)."""
    if activation is None:
        return lambda g: g
    lo, hi = F.ACTIVATIONS[activation]
    return lambda g: get_backend(g).clip_grad(_rectified(g), y, lo, hi)


def _conv(x, weight, bias, stride, padding, dilation, groups, algo, padding_mode, sd, activation=None):
    x, weight = _t(x), _t(weight)
    bias = None if bias is None else _t(bias)
    if padding_mode != "zeros":
        # a padded copy then a 'valid' convolution: the mode's gradient is pad_adjoint's job
        geom = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, spatial_dims=sd)
        x = pad(x, geom.padding[2 - sd:], padding_mode)
        padding = 0
    fwd = F.conv1d if sd == 1 else F.conv2d
    gin = G.conv1d_input if sd == 1 else G.conv2d_input
    gw = G.conv1d_weight if sd == 1 else G.conv2d_weight
    y = fwd(x.data, weight.data, _data(bias), stride, padding, dilation, groups, algo,
            activation=activation)
    xd, wd = x.data, weight.data
    through = _through_activation(y, activation)

    def backward(g):
        g = through(g)
        return (gin(xd.shape, wd, g, stride, padding, dilation, groups, algo) if x.requires_grad else None,
                gw(xd, wd.shape, g, stride, padding, dilation, groups, algo) if weight.requires_grad else None,
                G.bias(g) if bias is not None and bias.requires_grad else None)
    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._make(y, parents, backward, f"conv{sd}d")


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto",
           padding_mode="zeros", activation=None) -> Tensor:
    """1-D convolution of x (N, C_in, L) with weight (C_out, C_in/groups, K), differentiable in all three.

    Arguments as :func:`fastconv.functional.conv1d` (``activation``: a fused 'relu' or 'relu6',
    whose derivative masks the incoming gradient). The input gradient is the transposed
    convolution (``grad.conv1d_input``), the weight gradient ``grad.conv1d_weight``, the bias
    gradient a sum.

    Example:
        >>> y = conv1d(Tensor(np.ones((1, 1, 5))), Tensor(np.ones((2, 1, 3)), requires_grad=True), padding='same')
        >>> y.shape
        (1, 2, 5)
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, algo, padding_mode, 1, activation)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto",
           padding_mode="zeros", activation=None) -> Tensor:
    """2-D convolution of x (N, C_in, H, W) with weight (C_out, C_in/groups, kh, kw), differentiable in all three.

    Args:
        x, weight, bias: Tensors (or arrays, treated as constants).
        stride, padding, dilation, groups, algo, padding_mode: as :func:`fastconv.functional.conv2d`
            (padding int, (h, w), ((top, bottom), (left, right)), 'valid', 'same' or 'full').
        activation: None, 'relu' or 'relu6', fused with the bias into the convolution
            (``relu6(conv2d(...))`` in one op; the gradient is masked where it clipped).

    Example:
        >>> x = Tensor(np.random.rand(1, 3, 8, 8), requires_grad=True)
        >>> conv2d(x, Tensor(np.random.rand(4, 3, 3, 3)), stride=2, padding='same').shape
        (1, 4, 4, 4)

    Reference: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016.
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, algo, padding_mode, 2, activation)


def _conv_t(x, weight, bias, stride, padding, output_padding, groups, dilation, algo, sd, activation=None):
    x, weight = _t(x), _t(weight)
    bias = None if bias is None else _t(bias)
    fwd = F.conv_transpose1d if sd == 1 else F.conv_transpose2d
    gin = G.conv_transpose1d_input if sd == 1 else G.conv_transpose2d_input
    gw = G.conv_transpose1d_weight if sd == 1 else G.conv_transpose2d_weight
    y = fwd(x.data, weight.data, _data(bias), stride, padding, output_padding, groups, dilation, algo,
            activation=activation)
    xd, wd = x.data, weight.data
    through = _through_activation(y, activation)

    def backward(g):
        g = through(g)
        args = (stride, padding, output_padding, groups, dilation, algo)
        return (gin(xd.shape, wd, g, *args) if x.requires_grad else None,
                gw(xd, wd.shape, g, *args) if weight.requires_grad else None,
                G.bias(g) if bias is not None and bias.requires_grad else None)
    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._make(y, parents, backward, f"conv_transpose{sd}d")


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     algo="auto", activation=None) -> Tensor:
    """1-D transposed convolution (weight (C_in, C_out/groups, K)); its input gradient is conv1d.

    Example:
        >>> conv_transpose1d(Tensor(np.ones((1, 1, 3))), Tensor(np.ones((1, 1, 3))), stride=2).shape
        (1, 1, 7)
    """
    return _conv_t(x, weight, bias, stride, padding, output_padding, groups, dilation, algo, 1, activation)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     algo="auto", activation=None) -> Tensor:
    """2-D transposed convolution (weight (C_in, C_out/groups, kh, kw)); its input gradient is conv2d.

    Arguments as :func:`fastconv.functional.conv_transpose2d`.

    Example:
        >>> conv_transpose2d(Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((2, 3, 4, 4))), stride=2, padding=1).shape
        (1, 3, 8, 8)

    Reference: Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016.
    """
    return _conv_t(x, weight, bias, stride, padding, output_padding, groups, dilation, algo, 2, activation)


def linear(x, weight, bias=None) -> Tensor:
    """``x @ weight.T + bias`` with x (..., in), weight (out, in), bias (out,), as PyTorch's ``linear``.

    Example:
        >>> linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 3)))).shape
        (2, 4)
    """
    y = _t(x) @ _t(weight).T
    return y if bias is None else y + bias


# ----------------------------------------------------------------------------- activations
def _pointwise(x, out, dydx, op, rectifier: bool = False):
    """An elementwise op; ``dydx()`` (the local derivative) is computed only when a graph is recorded.

    A ``rectifier`` (relu, relu6) passes back ``_rectified(g)``: see :func:`guided_rectifiers`.
    """
    if not (is_grad_enabled() and x.requires_grad):
        return Tensor(out)
    d = dydx()
    incoming = _rectified if rectifier else (lambda g: g)
    return Tensor._make(out, (x,), lambda g: (incoming(g) * d,), op)


def relu(x) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as PyTorch's.

    Example:
        >>> relu(Tensor(np.array([-1.0, 2.0]))).data
        array([0., 2.])
    """
    x = _t(x)
    # maximum, not x * (x > 0), which would give -0.0 for negative inputs
    return _pointwise(x, get_xp(x.data).maximum(x.data, 0), lambda: x.data > 0, "relu", rectifier=True)


def relu6(x) -> Tensor:
    """min(max(x, 0), 6), the clipped ReLU of MobileNets (Sandler et al., 2018).

    Example:
        >>> relu6(Tensor(np.array([-1.0, 3.0, 9.0]))).data
        array([0., 3., 6.])
    """
    x = _t(x)
    xp = get_xp(x.data)
    return _pointwise(x, xp.clip(x.data, 0, 6), lambda: (x.data > 0) & (x.data < 6), "relu6", rectifier=True)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x (Maas et al., 2013).

    Example:
        >>> leaky_relu(Tensor(np.array([-2.0, 2.0])), 0.1).data
        array([-0.2,  2. ])
    """
    x = _t(x)
    xp = get_xp(x.data)
    slope = xp.where(x.data > 0, 1, negative_slope).astype(x.data.dtype)
    return _pointwise(x, x.data * slope, lambda: slope, "leaky_relu")


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for large |x|.

    Example:
        >>> sigmoid(Tensor(np.array([0.0]))).data
        array([0.5])
    """
    x = _t(x)
    xp = get_xp(x.data)
    e = xp.exp(-xp.abs(x.data))
    out = xp.where(x.data >= 0, 1 / (1 + e), e / (1 + e)).astype(x.data.dtype)
    return _pointwise(x, out, lambda: out * (1 - out), "sigmoid")


def tanh(x) -> Tensor:
    """Hyperbolic tangent; derivative 1 - tanh^2.

    Example:
        >>> tanh(Tensor(np.array([0.0]))).data
        array([0.])
    """
    x = _t(x)
    out = get_xp(x.data).tanh(x.data)
    return _pointwise(x, out, lambda: 1 - out * out, "tanh")


def log_softmax(x, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, shifted by the maximum for stability.

    Example:
        >>> np.exp(log_softmax(Tensor(np.array([[0.0, 0.0]]))).data)
        array([[0.5, 0.5]])
    """
    x = _t(x)
    xp = get_xp(x.data)
    z = x.data - x.data.max(axis=axis, keepdims=True)
    out = z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
    sm = xp.exp(out)
    return Tensor._make(out, (x,), lambda g: (g - sm * g.sum(axis=axis, keepdims=True),), "log_softmax")


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``.

    Example:
        >>> softmax(Tensor(np.array([[1.0, 1.0]]))).data
        array([[0.5, 0.5]])
    """
    x = _t(x)
    xp = get_xp(x.data)
    e = xp.exp(x.data - x.data.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)
    return Tensor._make(out, (x,), lambda g: (out * (g - (g * out).sum(axis=axis, keepdims=True)),), "softmax")


# ----------------------------------------------------------------------------- losses
def cross_entropy(logits, target, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, classes) against integer class indices target (N,).

    Args:
        logits: Tensor (N, K).
        target: integer array (N,) with values in [0, K).
        reduction: 'mean', 'sum' or 'none'.

    Example:
        >>> cross_entropy(Tensor(np.zeros((2, 4))), np.array([0, 3])).item()  # log 4
        1.3862943611198906
    """
    logits = _t(logits)
    xp = get_xp(logits.data)
    target = target.data if isinstance(target, Tensor) else xp.asarray(target)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, classes), got shape {logits.shape}")
    if target.shape != logits.shape[:1] or target.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: target must be {logits.shape[0]} integer class indices, got "
                         f"shape {tuple(target.shape)} dtype {target.dtype}; logits shape {logits.shape}")
    k = logits.shape[1]
    if target.size and (int(target.min()) < 0 or int(target.max()) >= k):
        raise ValueError(f"cross_entropy: target values must lie in [0, {k}), got [{int(target.min())}, "
                         f"{int(target.max())}]")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    logp = log_softmax(logits, axis=1)
    picked = -logp[xp.arange(logits.shape[0]), target]
    return picked if reduction == "none" else (picked.sum() if reduction == "sum" else picked.mean())


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error; ``target`` may be a Tensor (then differentiated too) or an array.

    Example:
        >>> mse_loss(Tensor(np.array([1.0, 3.0])), np.array([0.0, 0.0])).item()
        5.0
    """
    input = _t(input)
    if tuple(getattr(target, "shape", ())) != input.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape "
                         f"{tuple(getattr(target, 'shape', ()))} differ")
    sq = (input - target) ** 2
    if reduction == "none":
        return sq
    return sq.sum() if reduction == "sum" else sq.mean()


# ----------------------------------------------------------------------------- pooling
def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling (padding counts as -inf); the gradient goes to the first maximum of each window.

    Example:
        >>> max_pool2d(Tensor(np.arange(16.0).reshape(1, 1, 4, 4)), 2).data[0, 0]
        array([[ 5.,  7.],
               [13., 15.]])
    """
    x = _t(x)
    y, idx = P.max_pool2d(x.data, kernel_size, stride, padding)
    shape = x.shape
    return Tensor._make(y, (x,), lambda g: (P.max_pool2d_backward(g, idx, shape, kernel_size, stride, padding),),
                        "max_pool2d")


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad: bool = True) -> Tensor:
    """Average pooling with zero padding; ``count_include_pad`` as PyTorch's.

    Example:
        >>> avg_pool2d(Tensor(np.ones((1, 1, 2, 2))), 2, padding=1, count_include_pad=False).data[0, 0]
        array([[1., 1.],
               [1., 1.]])
    """
    x = _t(x)
    y = P.avg_pool2d(x.data, kernel_size, stride, padding, count_include_pad)
    shape = x.shape
    return Tensor._make(y, (x,), lambda g: (P.avg_pool2d_backward(g, shape, kernel_size, stride, padding,
                                                                  count_include_pad),), "avg_pool2d")


def _size2(size, name):
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size))
    size = tuple(size)
    if len(size) != 2:
        raise ValueError(f"{name} must be an int or (h, w), got {size!r}")
    return size


def adaptive_avg_pool2d(x, output_size) -> Tensor:
    """Average pooling to a fixed (h, w) output with PyTorch's bins (``P_h @ x @ P_w.T``).

    ``None`` in output_size keeps that axis.

    Example:
        >>> adaptive_avg_pool2d(Tensor(np.ones((1, 2, 5, 7))), 1).shape
        (1, 2, 1, 1)
    """
    x = _t(x)
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: input must be (N, C, H, W), got shape {x.shape}")
    oh, ow = _size2(output_size, "output_size")
    oh, ow = x.shape[2] if oh is None else oh, x.shape[3] if ow is None else ow
    xp = get_xp(x.data)
    ph = xp.asarray(P.adaptive_pool_matrix(x.shape[2], oh, x.dtype))
    pw = xp.asarray(P.adaptive_pool_matrix(x.shape[3], ow, x.dtype))
    return ph @ x @ pw.T


def global_avg_pool2d(x) -> Tensor:
    """Mean over the spatial axes, keeping them as 1 x 1: (N, C, H, W) -> (N, C, 1, 1)."""
    return _t(x).mean(axis=(2, 3), keepdims=True)


# ----------------------------------------------------------------------------- normalisation, noise
def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over every axis but the channel axis 1 (Ioffe & Szegedy, 2015).

    In training the batch statistics normalise (biased variance) and the running statistics
    are updated in place with the unbiased variance, as PyTorch does:
    ``running = (1 - momentum) * running + momentum * batch``. In eval the running statistics
    normalise.

    Args:
        x: (N, C) or (N, C, H, W).
        running_mean, running_var: (C,) arrays (updated in place when training) or None.
        weight, bias: optional (C,) Tensors (the affine transform).

    Example:
        >>> y = batch_norm(Tensor(np.random.rand(8, 3, 4, 4)), None, None, training=True)
        >>> bool(abs(y.data.mean()) < 1e-6)
        True
    """
    x = _t(x)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)
        if running_mean is not None:
            n = x.size // x.shape[1]
            running_mean *= 1 - momentum
            running_mean += momentum * mean.data.reshape(-1)
            running_var *= 1 - momentum
            running_var += momentum * var.data.reshape(-1) * (n / max(n - 1, 1))
        y = centred * (var + eps) ** -0.5
    else:
        if running_mean is None:
            raise ValueError("batch_norm: eval mode needs running_mean and running_var")
        xp = get_xp(x.data)
        scale = 1 / xp.sqrt(running_var + eps)
        y = (x - running_mean.reshape(shape)) * scale.reshape(shape).astype(x.dtype)
    if weight is not None:
        y = y * _t(weight).reshape(shape)
    if bias is not None:
        y = y + _t(bias).reshape(shape)
    return y


def dropout(x, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (Srivastava et al., 2014).

    Args:
        rng: a ``numpy.random.Generator`` (or None for the array module's global generator).

    Example:
        >>> dropout(Tensor(np.ones(4)), 0.5, training=False).data
        array([1., 1., 1., 1.])
    """
    x = _t(x)
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    xp = get_xp(x.data)
    u = xp.asarray(rng.random(x.shape)) if rng is not None else xp.random.random_sample(x.shape)
    mask = (u >= p).astype(x.dtype) / x.dtype.type(1 - p)
    return _pointwise(x, x.data * mask, lambda: mask, "dropout")


def interp_matrix(n_in: int, n_out: int, mode: str, align_corners: bool = False, scale=None,
                  dtype=np.float32) -> np.ndarray:
    """The (n_out, n_in) matrix of 1-D 'nearest' or 'linear' resampling, with PyTorch's coordinates.

    ``scale`` is the user's scale factor (PyTorch maps output i to input i / scale); without it
    the ratio n_in / n_out is used.
    """
    ratio = (1.0 / scale) if scale else n_in / n_out
    dst = np.arange(n_out, dtype=np.float64)
    m = np.zeros((n_out, n_in), dtype)
    if mode == "nearest":
        m[np.arange(n_out), np.minimum(np.floor(dst * ratio).astype(int), n_in - 1)] = 1
        return m
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    np.add.at(m, (np.arange(n_out), i0), 1 - lam)
    np.add.at(m, (np.arange(n_out), i1), lam)
    return m


def upsample(x, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool = False) -> Tensor:
    """Resize (N, C, H, W) by 'nearest' or 'bilinear' interpolation (PyTorch's ``interpolate``).

    Bilinear resampling is separable, so the output is ``M_h @ x @ M_w.T`` with two small
    interpolation matrices; its gradient is the transposed resampling. Nearest upsampling
    followed by a convolution is the resize-convolution that avoids the checkerboard artifacts
    of strided transposed convolutions.

    Args:
        size: (h, w) output size, or
        scale_factor: number or (sh, sw).
        mode: 'nearest' or 'bilinear'.
        align_corners: bilinear only, as PyTorch's.

    Example:
        >>> upsample(Tensor(np.arange(4.0).reshape(1, 1, 2, 2)), scale_factor=2).data[0, 0]
        array([[0., 0., 1., 1.],
               [0., 0., 1., 1.],
               [2., 2., 3., 3.],
               [2., 2., 3., 3.]])

    Reference: Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016.
    """
    x = _t(x)
    if x.ndim != 4:
        raise ValueError(f"upsample: input must be (N, C, H, W), got shape {x.shape}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"upsample mode must be 'nearest' or 'bilinear', got {mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError("upsample: give exactly one of size and scale_factor")
    if size is not None:
        out, scales = _size2(size, "size"), (None, None)
    else:
        scales = (scale_factor, scale_factor) if np.isscalar(scale_factor) else tuple(scale_factor)
        out = tuple(int(np.floor(n * s)) for n, s in zip(x.shape[2:], scales))
    if min(out) < 1:
        raise ValueError(f"upsample: output size {out} is empty for input shape {x.shape}")
    xp = get_xp(x.data)
    lin = "nearest" if mode == "nearest" else "linear"
    mh, mw = (xp.asarray(interp_matrix(n, o, lin, align_corners, s, x.dtype))
              for n, o, s in zip(x.shape[2:], out, scales))
    return mh @ x @ mw.T
