"""Gradients of the convolutions, shaped like ``torch.nn.grad``.

Written once, from the backend's three primitives: the input gradient of a convolution IS the
transposed convolution (``conv_grad_input``), the weight gradient is a correlation of the input
with the output gradient (``conv_grad_weight``), and the bias gradient is a sum. For a
transposed convolution the roles swap: its input gradient is the forward convolution and its
weight gradient is ``conv_grad_weight(grad_output, input)``.

Example:
    >>> import numpy as np, fastconv
    >>> x = np.random.rand(2, 3, 8, 8); w = np.random.rand(4, 3, 3, 3)
    >>> gy = np.ones((2, 4, 8, 8))
    >>> fastconv.grad.conv2d_input(x.shape, w, gy, padding=1).shape
    (2, 3, 8, 8)
    >>> fastconv.grad.conv2d_weight(x, w.shape, gy, padding=1).shape
    (4, 3, 3, 3)
"""
from __future__ import annotations

from fastconv.backends import get_backend, get_xp
from fastconv.functional import _as4d, _check_pair, _check_shape, _dispatch, _w4d, check_array
from fastconv.geometry import ConvGeometry, conv_geometry, transposed_geometry


def _check_grad_output(grad_output, geom: ConvGeometry, expected4, ref):
    grad_output = check_array(grad_output, "grad_output", get_xp(ref))
    want = geom.user_shape(expected4)
    if tuple(grad_output.shape) != want:
        raise ValueError(f"grad_output has shape {tuple(grad_output.shape)}, but the convolution's "
                         f"output shape is {want}")
    if grad_output.dtype != ref.dtype:
        raise TypeError(f"grad_output dtype {grad_output.dtype.name} differs from {ref.dtype.name}")
    return grad_output


def _input_grad(input_shape, weight, grad_output, stride, padding, dilation, groups, algo, sd):
    input_shape = _check_shape(input_shape, "input_shape", sd + 2)
    grad_output, weight = _check_pair(grad_output, weight, "grad_output", "weight")
    geom = conv_geometry(input_shape, weight.shape, stride, padding, dilation, groups, spatial_dims=sd)
    _check_grad_output(grad_output, geom, geom.y_shape, weight)
    backend = get_backend(grad_output)
    dy4, w4 = _as4d(grad_output, geom), _w4d(weight, geom)
    dx = _dispatch(backend, algo, geom, "grad_input", weight.dtype,
                   lambda a: backend.conv_grad_input(dy4, w4, geom, a))
    return dx.reshape(input_shape)


def _weight_grad(x, weight_shape, grad_output, stride, padding, dilation, groups, algo, sd):
    weight_shape = _check_shape(weight_shape, "weight_shape", sd + 2)
    x, grad_output = _check_pair(x, grad_output, "input", "grad_output")
    geom = conv_geometry(x.shape, weight_shape, stride, padding, dilation, groups, spatial_dims=sd)
    _check_grad_output(grad_output, geom, geom.y_shape, x)
    backend = get_backend(x)
    x4, dy4 = _as4d(x, geom), _as4d(grad_output, geom)
    dw = _dispatch(backend, algo, geom, "grad_weight", x.dtype,
                   lambda a: backend.conv_grad_weight(x4, dy4, geom, a))
    return dw.reshape(weight_shape)


def conv1d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Gradient of ``conv1d`` w.r.t. its input, of shape ``input_shape`` (N, C_in, L)."""
    return _input_grad(input_shape, weight, grad_output, stride, padding, dilation, groups, algo, 1)


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Gradient of ``conv2d`` w.r.t. its input, of shape ``input_shape`` (N, C_in, H, W)."""
    return _input_grad(input_shape, weight, grad_output, stride, padding, dilation, groups, algo, 2)


def conv1d_weight(x, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Gradient of ``conv1d`` w.r.t. its weight, of shape ``weight_shape`` (C_out, C_in/groups, K)."""
    return _weight_grad(x, weight_shape, grad_output, stride, padding, dilation, groups, algo, 1)


def conv2d_weight(x, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Gradient of ``conv2d`` w.r.t. its weight, of shape ``weight_shape`` (C_out, C_in/groups, kh, kw)."""
    return _weight_grad(x, weight_shape, grad_output, stride, padding, dilation, groups, algo, 2)


def _t_input_grad(input_shape, weight, grad_output, stride, padding, output_padding, groups, dilation, algo, sd):
    input_shape = _check_shape(input_shape, "input_shape", sd + 2)
    grad_output, weight = _check_pair(grad_output, weight, "grad_output", "weight")
    geom = transposed_geometry(input_shape, weight.shape, stride, padding, output_padding, groups,
                               dilation, spatial_dims=sd)
    _check_grad_output(grad_output, geom, geom.x_shape, weight)
    backend = get_backend(grad_output)
    dy4, w4 = _as4d(grad_output, geom), _w4d(weight, geom)
    dx = _dispatch(backend, algo, geom, "forward", weight.dtype, lambda a: backend.conv_forward(dy4, w4, geom, a))
    return dx.reshape(input_shape)


def _t_weight_grad(x, weight_shape, grad_output, stride, padding, output_padding, groups, dilation, algo, sd):
    weight_shape = _check_shape(weight_shape, "weight_shape", sd + 2)
    x, grad_output = _check_pair(x, grad_output, "input", "grad_output")
    geom = transposed_geometry(x.shape, weight_shape, stride, padding, output_padding, groups,
                               dilation, spatial_dims=sd)
    _check_grad_output(grad_output, geom, geom.x_shape, x)
    backend = get_backend(x)
    dy4, x4 = _as4d(grad_output, geom), _as4d(x, geom)
    dw = _dispatch(backend, algo, geom, "grad_weight", x.dtype,
                   lambda a: backend.conv_grad_weight(dy4, x4, geom, a))
    return dw.reshape(weight_shape)


def conv_transpose1d_input(input_shape, weight, grad_output, stride=1, padding=0, output_padding=0,
                           groups=1, dilation=1, algo="auto"):
    """Gradient of ``conv_transpose1d`` w.r.t. its input: the forward ``conv1d`` of grad_output."""
    return _t_input_grad(input_shape, weight, grad_output, stride, padding, output_padding, groups,
                         dilation, algo, 1)


def conv_transpose2d_input(input_shape, weight, grad_output, stride=1, padding=0, output_padding=0,
                           groups=1, dilation=1, algo="auto"):
    """Gradient of ``conv_transpose2d`` w.r.t. its input: the forward ``conv2d`` of grad_output."""
    return _t_input_grad(input_shape, weight, grad_output, stride, padding, output_padding, groups,
                         dilation, algo, 2)


def conv_transpose1d_weight(x, weight_shape, grad_output, stride=1, padding=0, output_padding=0,
                            groups=1, dilation=1, algo="auto"):
    """Gradient of ``conv_transpose1d`` w.r.t. its weight (C_in, C_out/groups, K)."""
    return _t_weight_grad(x, weight_shape, grad_output, stride, padding, output_padding, groups,
                          dilation, algo, 1)


def conv_transpose2d_weight(x, weight_shape, grad_output, stride=1, padding=0, output_padding=0,
                            groups=1, dilation=1, algo="auto"):
    """Gradient of ``conv_transpose2d`` w.r.t. its weight (C_in, C_out/groups, kh, kw)."""
    return _t_weight_grad(x, weight_shape, grad_output, stride, padding, output_padding, groups,
                          dilation, algo, 2)


def bias(grad_output):
    """Gradient w.r.t. the bias: grad_output summed over every axis but the channel axis."""
    grad_output = check_array(grad_output, "grad_output")
    axes = (0,) + tuple(range(2, grad_output.ndim))
    return grad_output.sum(axis=axes)
