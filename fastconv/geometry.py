"""Convolution arithmetic: the one place where output sizes and paddings are computed.

Every convolution in fastconv is described by a :class:`ConvGeometry` in a canonical 2-D form:
a 1-D convolution is a 2-D one whose height axis has size 1, kernel 1, stride 1, no padding.
Padding is stored as explicit ``(low, high)`` pairs per axis, as JAX does, so that TensorFlow's
asymmetric SAME padding and user-given pairs need no special case anywhere else.

Formulas (per axis, ``k_eff = dilation * (k - 1) + 1``)::

    out            = floor((in + pad_lo + pad_hi - k_eff) / stride) + 1
    transposed out = (in - 1) * stride - pad_lo - pad_hi + k_eff + output_padding
    'same'         : out = ceil(in / stride), total pad = max((out-1)*stride + k_eff - in, 0),
                     pad_lo = total // 2, pad_hi = total - pad_lo  (the extra pixel goes high)
    'full'         : pad_lo = pad_hi = k_eff - 1 (SciPy's mode='full': every partial overlap;
                     out = in + k_eff - 1 at stride 1)

Example:
    >>> import fastconv
    >>> fastconv.output_shape((1, 3, 224, 224), (32, 3, 3, 3), stride=2, padding='same')
    (1, 32, 112, 112)
    >>> conv_geometry((1, 3, 224, 224), (32, 3, 3, 3), stride=2, padding='same').padding
    ((0, 1), (0, 1))
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence, Union

Pair = tuple[int, int]
PaddingArg = Union[int, str, Sequence[Union[int, Sequence[int]]]]


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one convolution ``x (N, C_in, H, W) * w (C_out, C_in/groups, kh, kw)``.

    All spatial tuples have two entries (height, width); ``spatial_dims`` says whether the
    user's arrays were 1-D (N, C, L) or 2-D (N, C, H, W). ``out_size`` is stored, not derived,
    because a transposed convolution with ``output_padding`` has an input one or more pixels
    larger than the forward formula implies.
    """

    N: int
    C_in: int
    C_out: int
    groups: int
    in_size: Pair
    kernel: Pair
    stride: Pair
    dilation: Pair
    padding: tuple[Pair, Pair]
    out_size: Pair
    spatial_dims: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C_in) + tuple(self.in_size)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C_out) + tuple(self.out_size)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.C_out, self.C_in // self.groups) + tuple(self.kernel)

    def user_shape(self, shape4: Sequence[int]) -> tuple[int, ...]:
        """Drop the dummy height axis of a 1-D convolution: (N, C, 1, L) -> (N, C, L)."""
        shape4 = tuple(shape4)
        return shape4 if self.spatial_dims == 2 else shape4[:2] + shape4[3:]

    @property
    def macs(self) -> int:
        """Multiply-adds of the nominal convolution (padded taps counted)."""
        return (self.N * self.C_out * self.out_size[0] * self.out_size[1]
                * (self.C_in // self.groups) * self.kernel[0] * self.kernel[1])

    @property
    def is_depthwise(self) -> bool:
        return self.groups == self.C_in and self.groups > 1

    @property
    def is_pointwise(self) -> bool:
        """A 1x1 convolution with stride 1 and no padding is a plain matrix product.

        Input and output sizes must agree too: a transposed convolution's geometry with
        ``output_padding`` (kernel 1, dilation 2) has an input larger than its output.
        """
        return (self.kernel == (1, 1) and self.stride == (1, 1)
                and self.padding == ((0, 0), (0, 0)) and self.in_size == self.out_size)

    @property
    def is_winograd_3x3(self) -> bool:
        """A dense (groups=1) 2-D 3x3 convolution at stride 1 and dilation 1, any padding: what
        the Winograd algorithms of both backends compute (forward and input gradient)."""
        return (self.kernel == (3, 3) and self.stride == (1, 1) and self.dilation == (1, 1)
                and self.groups == 1 and self.spatial_dims == 2)


def check_winograd(g: ConvGeometry) -> None:
    """Raise the ValueError of ``algo='winograd'`` on a geometry it does not cover."""
    if not g.is_winograd_3x3:
        raise ValueError(
            "algo='winograd' needs a 2-D convolution with a 3x3 kernel, stride 1, dilation 1 and "
            f"groups=1; got kernel {g.kernel}, stride {g.stride}, dilation {g.dilation}, "
            f"groups={g.groups} ({g.spatial_dims}-D): use algo='auto', 'im2col' or 'direct'")


def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a length-n sequence of ints, each >= 1 (stride, dilation) -> n-tuple."""
    if isinstance(value, (int,)) and not isinstance(value, bool):
        vals = (value,) * n
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == n:
        vals = tuple(value)
    else:
        raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    for v in vals:
        if not isinstance(v, int) or isinstance(v, bool):
            try:
                import numpy as np
                if isinstance(v, np.integer):
                    continue
            except ImportError:  # pragma: no cover
                pass
            raise ValueError(f"{name} must contain ints, got {value!r}")
    return tuple(int(v) for v in vals)


def _positive(value, n: int, name: str) -> tuple[int, ...]:
    vals = _tuple(value, n, name)
    if any(v < 1 for v in vals):
        raise ValueError(f"{name} must be >= 1 on every axis, got {value!r}")
    return vals


def same_padding(in_size: int, kernel: int, stride: int = 1, dilation: int = 1) -> Pair:
    """TensorFlow SAME padding of one axis: output ceil(in/stride), extra pixel on the high side."""
    k_eff = dilation * (kernel - 1) + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + k_eff - in_size, 0)
    return (total // 2, total - total // 2)


def normalize_padding(padding: PaddingArg, n: int, in_size: Sequence[int], kernel: Sequence[int],
                      stride: Sequence[int], dilation: Sequence[int]) -> tuple[Pair, ...]:
    """Any accepted padding form -> n explicit (low, high) pairs.

    Accepted: int; 'valid'; 'same'; 'full'; a sequence of n ints (symmetric per axis); a sequence
    of n (low, high) pairs; for 1-D also a single (low, high) pair given as ``[(lo, hi)]``.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return tuple((0, 0) for _ in range(n))
        if mode == "same":
            return tuple(same_padding(i, k, s, d) for i, k, s, d in zip(in_size, kernel, stride, dilation))
        if mode == "full":
            return tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation))
        raise ValueError(f"padding must be an int, pairs, 'valid', 'same' or 'full', got {padding!r}")
    if isinstance(padding, int) and not isinstance(padding, bool):
        pairs = tuple((padding, padding) for _ in range(n))
    elif isinstance(padding, Sequence) and len(padding) == n:
        pairs = []
        for p in padding:
            if isinstance(p, Sequence) and not isinstance(p, str):
                if len(p) != 2:
                    raise ValueError(f"padding pair must be (low, high), got {p!r} in {padding!r}")
                pairs.append((_int(p[0], padding), _int(p[1], padding)))
            else:
                v = _int(p, padding)
                pairs.append((v, v))
        pairs = tuple(pairs)
    else:
        raise ValueError(f"padding must be an int, {n} ints, {n} (low, high) pairs, 'valid', 'same' or "
                         f"'full', got {padding!r}")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return pairs


def _int(v, whole) -> int:
    try:
        import numpy as np
        ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    except ImportError:  # pragma: no cover
        ok = isinstance(v, int) and not isinstance(v, bool)
    if not ok:
        raise ValueError(f"padding must contain ints, got {whole!r}")
    return int(v)


def conv_out_size(in_size: int, kernel: int, stride: int, dilation: int, pad: Pair) -> int:
    """floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1 (may be <= 0: invalid)."""
    return (in_size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def transposed_out_size(in_size: int, kernel: int, stride: int, dilation: int, pad: Pair,
                        output_padding: int) -> int:
    """(in-1)*stride - pad_lo - pad_hi + dilation*(k-1) + output_padding + 1."""
    return (in_size - 1) * stride - pad[0] - pad[1] + dilation * (kernel - 1) + output_padding + 1


def _spatial_dims(x_shape, w_shape, spatial_dims):
    if spatial_dims not in (1, 2):
        raise ValueError(f"spatial_dims must be 1 or 2, got {spatial_dims}")
    want = spatial_dims + 2
    names = {1: "(N, C, L)", 2: "(N, C, H, W)"}
    if len(x_shape) != want:
        raise ValueError(f"input must have {want} dimensions {names[spatial_dims]}, got shape {tuple(x_shape)}")
    if len(w_shape) != want:
        raise ValueError(f"weight must have {want} dimensions, got shape {tuple(w_shape)}")


def _to2d(t: tuple, fill) -> tuple:
    return t if len(t) == 2 else (fill,) + t


def _hashable(v):
    """Lists (of lists) as tuples, so that a call's arguments can key the geometry cache."""
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(e) for e in v)
    return v


def conv_geometry(x_shape: Sequence[int], w_shape: Sequence[int], stride=1, padding: PaddingArg = 0,
                  dilation=1, groups: int = 1, spatial_dims: int | None = None) -> ConvGeometry:
    """Validate and describe the convolution of ``x_shape`` with weight ``w_shape`` (cached).

    Args:
        x_shape: (N, C_in, L) or (N, C_in, H, W).
        w_shape: (C_out, C_in/groups, k) or (C_out, C_in/groups, kh, kw).
        stride, dilation: int or one int per spatial axis, each >= 1.
        padding: int, per-axis ints, per-axis (low, high) pairs, 'valid', 'same' or 'full'.
        groups: divides both C_in and C_out.

    Raises:
        ValueError naming the argument and the shapes when anything does not fit.
    """
    # a network calls the same few convolutions over and over: validate each shape once
    try:  # the arguments as given (shapes are tuples, and most arguments ints or strings)
        return _cached_conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, spatial_dims)
    except TypeError:  # a list somewhere (or something unhashable, which the checks will name)
        pass
    try:
        key = (_hashable(x_shape), _hashable(w_shape), _hashable(stride), _hashable(padding),
               _hashable(dilation), groups, spatial_dims)
        hash(key)
    except TypeError:
        return _conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, spatial_dims)
    return _cached_conv_geometry(*key)


@lru_cache(maxsize=4096)
def _cached_conv_geometry(*key) -> ConvGeometry:
    return _conv_geometry(*key)


def _conv_geometry(x_shape: Sequence[int], w_shape: Sequence[int], stride=1, padding: PaddingArg = 0,
                   dilation=1, groups: int = 1, spatial_dims: int | None = None) -> ConvGeometry:
    """The uncached :func:`conv_geometry`."""
    x_shape, w_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in w_shape)
    sd = spatial_dims if spatial_dims is not None else len(x_shape) - 2
    _spatial_dims(x_shape, w_shape, sd)
    N, C_in, in_size = x_shape[0], x_shape[1], x_shape[2:]
    C_out, C_per_group, kernel = w_shape[0], w_shape[1], w_shape[2:]
    groups = _group_count(groups)
    if any(s < 1 for s in x_shape):
        raise ValueError(f"input shape {x_shape} has an empty dimension")
    if any(s < 1 for s in w_shape):
        raise ValueError(f"weight shape {w_shape} has an empty dimension")
    if C_in % groups:
        raise ValueError(f"groups={groups} does not divide the input channels {C_in} (input shape {x_shape})")
    if C_out % groups:
        raise ValueError(f"groups={groups} does not divide the output channels {C_out} (weight shape {w_shape})")
    if C_per_group * groups != C_in:
        raise ValueError(f"weight shape {w_shape} expects {C_per_group * groups} input channels "
                         f"({C_per_group} per group x groups={groups}), but input shape {x_shape} has {C_in}")
    stride_t = _positive(stride, sd, "stride")
    dil_t = _positive(dilation, sd, "dilation")
    pads = normalize_padding(padding, sd, in_size, kernel, stride_t, dil_t)
    out = []
    for ax, (i, k, s, d, p) in enumerate(zip(in_size, kernel, stride_t, dil_t, pads)):
        k_eff = d * (k - 1) + 1
        if i + p[0] + p[1] < k_eff:
            raise ValueError(f"kernel (dilated size {k_eff} on spatial axis {ax}) is larger than the padded "
                             f"input ({i} + padding {p} = {i + p[0] + p[1]}); input shape {x_shape}, "
                             f"weight shape {w_shape}")
        out.append(conv_out_size(i, k, s, d, p))
    return ConvGeometry(N=N, C_in=C_in, C_out=C_out, groups=groups,
                        in_size=_to2d(tuple(in_size), 1), kernel=_to2d(tuple(kernel), 1),
                        stride=_to2d(stride_t, 1), dilation=_to2d(dil_t, 1),
                        padding=_to2d(pads, (0, 0)), out_size=_to2d(tuple(out), 1), spatial_dims=sd)


def transposed_geometry(x_shape: Sequence[int], w_shape: Sequence[int], stride=1, padding: PaddingArg = 0,
                        output_padding=0, groups: int = 1, dilation=1,
                        spatial_dims: int | None = None) -> ConvGeometry:
    """Describe a transposed convolution as the forward convolution whose input gradient it is.

    ``x_shape`` (N, C_in, *in) is the transposed convolution's input and ``w_shape`` is
    (C_in, C_out/groups, *k) as in PyTorch. The returned geometry is that of the forward
    convolution from the transposed output (N, C_out, *out) to ``x_shape``: its ``x_shape`` is
    the transposed output, its ``y_shape`` the transposed input, its weight layout the same array.
    """
    x_shape, w_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in w_shape)
    sd = spatial_dims if spatial_dims is not None else len(x_shape) - 2
    _spatial_dims(x_shape, w_shape, sd)
    N, C_in, in_size = x_shape[0], x_shape[1], x_shape[2:]
    groups = _group_count(groups)
    if any(s < 1 for s in x_shape):
        raise ValueError(f"input shape {x_shape} has an empty dimension")
    if any(s < 1 for s in w_shape):
        raise ValueError(f"weight shape {w_shape} has an empty dimension")
    if w_shape[0] != C_in:
        raise ValueError(f"transposed weight shape {w_shape} must be (C_in, C_out/groups, ...) with "
                         f"C_in={C_in} from input shape {x_shape}")
    if C_in % groups:
        raise ValueError(f"groups={groups} does not divide the input channels {C_in} (input shape {x_shape})")
    C_out = w_shape[1] * groups
    kernel = w_shape[2:]
    stride_t = _positive(stride, sd, "stride")
    dil_t = _positive(dilation, sd, "dilation")
    if isinstance(padding, str):
        if padding.lower() != "valid":
            raise ValueError(f"transposed convolution takes int or (low, high) padding or 'valid', got {padding!r}")
    pads = normalize_padding(padding, sd, in_size, kernel, stride_t, dil_t)
    op = _tuple(output_padding, sd, "output_padding")
    out = []
    for ax, (i, k, s, d, p, o) in enumerate(zip(in_size, kernel, stride_t, dil_t, pads, op)):
        if o < 0 or o >= max(s, d):
            raise ValueError(f"output_padding must be >= 0 and smaller than max(stride, dilation) = "
                             f"{max(s, d)} on spatial axis {ax}, got {output_padding!r}")
        size = transposed_out_size(i, k, s, d, p, o)
        if size < 1:
            raise ValueError(f"transposed output size on spatial axis {ax} would be {size}: padding {p} is "
                             f"too large for input shape {x_shape} and weight shape {w_shape}")
        if conv_out_size(size, k, s, d, p) < i:  # pragma: no cover - guaranteed by the formula
            raise ValueError("inconsistent transposed geometry")
        out.append(size)
    return ConvGeometry(N=N, C_in=C_out, C_out=C_in, groups=groups,
                        in_size=_to2d(tuple(out), 1), kernel=_to2d(tuple(kernel), 1),
                        stride=_to2d(stride_t, 1), dilation=_to2d(dil_t, 1),
                        padding=_to2d(pads, (0, 0)), out_size=_to2d(tuple(in_size), 1), spatial_dims=sd)


def _group_count(groups) -> int:
    try:
        import numpy as np
        ok = isinstance(groups, (int, np.integer)) and not isinstance(groups, bool)
    except ImportError:  # pragma: no cover
        ok = isinstance(groups, int)
    if not ok or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    return int(groups)


def output_shape(x_shape: Sequence[int], w_shape: Sequence[int], stride=1, padding: PaddingArg = 0,
                 dilation=1, groups: int = 1, transposed: bool = False, output_padding=0) -> tuple[int, ...]:
    """Output shape of ``conv{1,2}d`` (or ``conv_transpose{1,2}d`` with ``transposed=True``).

    Example:
        >>> output_shape((8, 64, 28, 28), (64, 32, 4, 4), stride=2, padding=1, transposed=True)
        (8, 32, 56, 56)
    """
    if transposed:
        g = transposed_geometry(x_shape, w_shape, stride, padding, output_padding, groups, dilation)
        return g.user_shape(g.x_shape)
    g = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    return g.user_shape(g.y_shape)
