"""Convolutions on arrays: validate every argument, compute the geometry once, dispatch.

Layouts follow PyTorch: inputs (N, C, L) or (N, C, H, W); weights (C_out, C_in/groups, *k);
transposed weights (C_in, C_out/groups, *k). float32 and float64 only; the output has the
input's dtype. Inputs may be non-contiguous; the caller's arrays are never modified.

Example:
    >>> import numpy as np, fastconv
    >>> x = np.random.rand(1, 3, 32, 32).astype(np.float32)
    >>> w = np.random.rand(8, 3, 3, 3).astype(np.float32)
    >>> fastconv.conv2d(x, w, stride=2, padding='same').shape
    (1, 8, 16, 16)
"""
from __future__ import annotations

from fastconv import autotune
from fastconv.backends import get_backend, get_xp
from fastconv.geometry import ConvGeometry, PaddingArg, conv_geometry, transposed_geometry

DTYPES = ("float32", "float64")
_FLOAT_CHARS = "fd"   # dtype.char of float32 and float64 (cheaper to test than dtype.name)
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# ----------------------------------------------------------------------------- validation
def check_array(a, name: str, xp=None):
    """``a`` as an array of a supported dtype, or a TypeError naming ``name`` and the dtypes."""
    if xp is None:
        xp = get_xp(a)
    if not hasattr(a, "dtype") or not hasattr(a, "shape"):
        a = xp.asarray(a)
    if a.dtype.char not in _FLOAT_CHARS:
        raise TypeError(f"{name} has dtype {a.dtype.name}; fastconv computes in float32 or float64 "
                        f"(cast with .astype(np.float32))")
    return a


def _check_pair(x, w, xname="input", wname="weight"):
    x = check_array(x, xname)
    w = check_array(w, wname, get_xp(x))
    if get_xp(x) is not get_xp(w):
        raise TypeError(f"{xname} and {wname} must live on the same device (both NumPy or both CuPy)")
    if x.dtype != w.dtype:
        raise TypeError(f"{xname} dtype {x.dtype.name} and {wname} dtype {w.dtype.name} differ; "
                        f"cast both to float32 or both to float64")
    return x, w


def _check_shape(shape, name: str, ndim: int) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a shape tuple, got {shape!r}") from None
    if len(shape) != ndim:
        raise ValueError(f"{name} must have {ndim} entries, got {shape}")
    return shape


def _dispatch(backend, algo: str, geom: ConvGeometry, op: str, dtype, call):
    """``call(a)`` with the algorithm ``a`` that runs ``op``: ``algo`` itself, checked, or for
    'auto' the backend's rule or the autotuner's choice (which times ``call`` with each candidate,
    see ``fastconv.autotune``)."""
    if algo == "auto":
        algo = autotune.pick(backend, op, geom, dtype, call)
    elif algo not in backend.ALGOS:
        raise ValueError(f"algo must be one of {('auto',) + tuple(backend.ALGOS)} on the "
                         f"{backend.name} backend, got {algo!r}")
    return call(algo)


def _as4d(a, geom: ConvGeometry):
    """Contiguous 4-D view (a 1-D signal gets a height axis of 1)."""
    xp = get_xp(a)
    a = xp.ascontiguousarray(a)
    return a if geom.spatial_dims == 2 else a[:, :, None, :]


def _w4d(w, geom: ConvGeometry):
    xp = get_xp(w)
    w = xp.ascontiguousarray(w)
    return w if geom.spatial_dims == 2 else w[:, :, None, :]


def _check_bias(bias, channels: int, x):
    if bias is None:
        return None
    bias = check_array(bias, "bias", get_xp(x))
    if bias.shape != (channels,):
        raise ValueError(f"bias must have shape ({channels},) to match the output channels, got {bias.shape}")
    if bias.dtype != x.dtype:
        raise TypeError(f"bias dtype {bias.dtype.name} differs from input dtype {x.dtype.name}")
    return bias


#: The activations a convolution can apply in its epilogue, as the (lo, hi) they clip to.
ACTIVATIONS = {"relu": (0.0, float("inf")), "relu6": (0.0, 6.0)}


def check_activation(activation):
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None or one of {tuple(ACTIVATIONS)}, got {activation!r}")
    return activation


def _epilogue_args(bias, activation):
    """(bias or None, lo, hi) for a backend: add the bias, then clip to the activation's range."""
    if bias is None and activation is None:
        return None
    return (bias,) + ACTIVATIONS.get(activation, (-float("inf"), float("inf")))


def _epilogue(y, bias, activation):
    """y + bias (per channel), then the activation: one pass over y, in place."""
    args = _epilogue_args(bias, activation)
    if args is not None:
        get_backend(y).bias_clip_(y, *args)
    return y


# ----------------------------------------------------------------------------- padding modes
def _pad_index(xp, n: int, lo: int, hi: int, mode: str):
    """Source index of every padded position of one axis under ``mode``."""
    idx = xp.arange(-lo, n + hi)
    if mode == "replicate":
        return xp.clip(idx, 0, n - 1)
    if mode == "circular":
        return idx % n
    # reflect (without repeating the edge), as numpy's 'reflect' and torch's 'reflect'
    period = 2 * (n - 1)
    idx = xp.abs(idx) % period if period else xp.zeros_like(idx)
    return xp.where(idx >= n, period - idx, idx)


def _check_mode_padding(shape, pairs, mode):
    for ax, ((lo, hi), n) in enumerate(zip(pairs, shape[-len(pairs):])):
        limit = n - 1 if mode == "reflect" else n
        if mode in ("reflect", "circular") and max(lo, hi) > limit:
            raise ValueError(f"padding_mode={mode!r} needs padding <= {limit} on spatial axis {ax} "
                             f"(size {n}), got {(lo, hi)}; input shape {tuple(shape)}")


def pad(x, pairs, mode: str = "zeros"):
    """Pad the trailing ``len(pairs)`` axes of ``x`` with (low, high) ``pairs`` under ``mode``.

    Modes: 'zeros', 'reflect' (mirror without the edge), 'replicate' (repeat the edge),
    'circular' (wrap around), as PyTorch's ``padding_mode``.
    """
    xp = get_xp(x)
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {mode!r}")
    pairs = [tuple(p) for p in pairs]
    lead = [(0, 0)] * (x.ndim - len(pairs))
    if mode == "zeros":
        return xp.pad(x, lead + pairs)
    _check_mode_padding(x.shape, pairs, mode)
    for k, (lo, hi) in enumerate(pairs):
        axis = x.ndim - len(pairs) + k
        x = xp.take(x, _pad_index(xp, x.shape[axis], lo, hi, mode), axis=axis)
    return x


def pad_adjoint(g, pairs, mode: str, in_shape):
    """The adjoint of :func:`pad`: fold a gradient of the padded array back onto the input."""
    xp = get_xp(g)
    pairs = [tuple(p) for p in pairs]
    nd = len(pairs)
    for k, (lo, hi) in enumerate(pairs):
        axis = g.ndim - nd + k
        n = in_shape[axis]
        if mode == "zeros":
            g = xp.take(g, xp.arange(lo, lo + n), axis=axis)
            continue
        idx = _pad_index(xp, n, lo, hi, mode)
        # a 0/1 matrix M with M[src, padded] = 1 maps the padded gradient onto the input axis
        m = xp.zeros((n, idx.shape[0]), g.dtype)
        m[idx, xp.arange(idx.shape[0])] = 1
        g = xp.moveaxis(xp.tensordot(g, m, axes=([axis], [1])), -1, axis)
    return xp.ascontiguousarray(g)


# ----------------------------------------------------------------------------- forward
def _conv(x, weight, bias, stride, padding, dilation, groups, algo, padding_mode, sd, activation=None):
    x, weight = _check_pair(x, weight)
    check_activation(activation)
    geom = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, spatial_dims=sd)
    bias = _check_bias(bias, geom.C_out, x)
    if padding_mode != "zeros":
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        pairs = geom.padding[2 - sd:]
        x = pad(x, pairs, padding_mode)
        geom = conv_geometry(x.shape, weight.shape, stride, 0, dilation, groups, spatial_dims=sd)
    backend = get_backend(x)
    x4, w4, ep = _as4d(x, geom), _w4d(weight, geom), _epilogue_args(bias, activation)
    y = _dispatch(backend, algo, geom, "forward", x.dtype,
                  lambda a: backend.conv_forward(x4, w4, geom, a, epilogue=ep))
    return y.reshape(geom.user_shape(y.shape))


def conv1d(x, weight, bias=None, stride=1, padding: PaddingArg = 0, dilation=1, groups: int = 1,
           algo: str = "auto", padding_mode: str = "zeros", activation: str | None = None):
    """1-D cross-correlation (PyTorch's ``conv1d``) of x (N, C_in, L) with weight (C_out, C_in/groups, K).

    Args:
        x: (N, C_in, L) float32 or float64.
        weight: (C_out, C_in/groups, K), same dtype.
        bias: optional (C_out,).
        stride, dilation: int >= 1.
        padding: int, (low, high) pair as ``[(lo, hi)]``, 'valid', 'same' (TF SAME, any stride)
            or 'full' (SciPy's: every partial overlap, length L + K - 1 at stride 1).
        groups: number of channel groups (groups == C_in: depthwise).
        algo: 'auto', 'direct', 'im2col' or 'fft' (CPU; 'implicit_gemm' on CUDA); all give the
            same result. 'auto' picks the FFT for long kernels (see ``conv2d``).
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.
        activation: None, 'relu' or 'relu6', applied after the bias in the same pass over the
            output (a fused epilogue: one read and write instead of two or three).

    Returns:
        (N, C_out, L_out) array of x's dtype.

    Example (smoothing with a moving average, the course's 1-D example):
        >>> sig = np.arange(6, dtype=np.float64)[None, None]
        >>> conv1d(sig, np.full((1, 1, 3), 1 / 3), padding='same').round(3)
        array([[[0.333, 1.   , 2.   , 3.   , 4.   , 3.   ]]])
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, algo, padding_mode, 1, activation)


def conv2d(x, weight, bias=None, stride=1, padding: PaddingArg = 0, dilation=1, groups: int = 1,
           algo: str = "auto", padding_mode: str = "zeros", activation: str | None = None):
    """2-D cross-correlation (PyTorch's ``conv2d``) of x (N, C_in, H, W) with weight (C_out, C_in/groups, kh, kw).

    Args:
        x: (N, C_in, H, W) float32 or float64 (any strides).
        weight: (C_out, C_in/groups, kh, kw), same dtype.
        bias: optional (C_out,).
        stride, dilation: int or (h, w), each >= 1.
        padding: int, (h, w), ((top, bottom), (left, right)), 'valid', 'same' or 'full'
            ('same' is TensorFlow's SAME at any stride: output ceil(in/stride), the odd pixel
            of padding at the bottom/right; 'full' is SciPy's, k - 1 on every side).
        groups: channel groups; groups == C_in is a depthwise convolution.
        algo: 'auto', 'direct', 'im2col', 'winograd' (CPU; 3x3 kernels at stride 1 and
            dilation 1 only, and in float32 about 2e-6 of the output's scale from the exact
            result, where the others are within 3e-7) or 'fft' (CPU; any geometry, products
            of spectra, float32 error about 3e-7); 'implicit_gemm' on CUDA. 'auto' picks
            Winograd for 3x3 stride-1 layers with 32 or more input and output channels and
            48 or more 4x4 output tiles in the batch, and the FFT for stride-1 kernels of 5x5
            and larger where a cost model says it beats im2col (e.g. 16 channels at 64x64
            from 9x9 on: 15x15 1.8-3x, 31x31 6-7x faster than im2col).
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.
        activation: None, 'relu' or 'relu6', applied after the bias in the same pass over the
            output (a fused epilogue: one read and write instead of two or three).

    Returns:
        (N, C_out, Ho, Wo), with Ho = floor((H + top + bottom - dilation*(kh-1) - 1)/stride) + 1.

    Example:
        >>> x = np.ones((1, 1, 4, 4), np.float32)
        >>> conv2d(x, np.ones((1, 1, 3, 3), np.float32))[0, 0]
        array([[9., 9.],
               [9., 9.]], dtype=float32)

    Reference: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016.
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, algo, padding_mode, 2, activation)


def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, algo, sd,
                    activation=None):
    x, weight = _check_pair(x, weight)
    check_activation(activation)
    geom = transposed_geometry(x.shape, weight.shape, stride, padding, output_padding, groups,
                               dilation, spatial_dims=sd)
    bias = _check_bias(bias, geom.C_in, x)
    backend = get_backend(x)
    x4, w4 = _as4d(x, geom), _w4d(weight, geom)
    y = _dispatch(backend, algo, geom, "grad_input", x.dtype, lambda a: backend.conv_grad_input(x4, w4, geom, a))
    return _epilogue(y, bias, activation).reshape(geom.user_shape(y.shape))


def conv_transpose1d(x, weight, bias=None, stride=1, padding: PaddingArg = 0, output_padding=0,
                     groups: int = 1, dilation=1, algo: str = "auto", activation: str | None = None):
    """1-D transposed convolution: the adjoint (C^T) of ``conv1d`` with the same arguments.

    Args:
        x: (N, C_in, L).
        weight: (C_in, C_out/groups, K) as in PyTorch.
        output_padding: extra samples at the high end, < max(stride, dilation).
        activation: None, 'relu' or 'relu6', fused with the bias as in :func:`conv1d`.

    Returns:
        (N, C_out, (L-1)*stride - pad_lo - pad_hi + dilation*(K-1) + output_padding + 1).

    Example:
        >>> conv_transpose1d(np.ones((1, 1, 3)), np.ones((1, 1, 3)), stride=2)[0, 0]
        array([1., 1., 2., 1., 2., 1., 1.])
    """
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, algo, 1, activation)


def conv_transpose2d(x, weight, bias=None, stride=1, padding: PaddingArg = 0, output_padding=0,
                     groups: int = 1, dilation=1, algo: str = "auto", activation: str | None = None):
    """2-D transposed convolution ("deconvolution"): the gradient of ``conv2d`` w.r.t. its input.

    Args:
        x: (N, C_in, H, W).
        weight: (C_in, C_out/groups, kh, kw) as in PyTorch.
        stride, padding, dilation, groups: as the forward convolution it transposes
            (padding: int, (h, w) or per-axis (low, high) pairs; 'valid' = 0).
        output_padding: int or (h, w), each < max(stride, dilation): extra rows/columns at the
            bottom/right, which pick one of the several input sizes a strided conv maps alike.
        activation: None, 'relu' or 'relu6', fused with the bias as in :func:`conv2d`.

    Returns:
        (N, C_out, Ho, Wo) with Ho = (H-1)*stride - top - bottom + dilation*(kh-1) + output_padding + 1.

    Example (a kernel 3 stride 2 upsampling: the overlap gives the checkerboard of Odena et al.):
        >>> conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), stride=2)[0, 0]
        array([[1., 1., 2., 1., 1.],
               [1., 1., 2., 1., 1.],
               [2., 2., 4., 2., 2.],
               [1., 1., 2., 1., 1.],
               [1., 1., 2., 1., 1.]])
    """
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, algo, 2, activation)
