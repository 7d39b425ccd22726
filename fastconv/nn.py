"""Layers as PyTorch writes them: Module, Conv2d, Linear, BatchNorm2d, ..., Sequential.

A :class:`Module` registers the Parameters, buffers and sub-modules assigned to it as
attributes, so ``named_parameters()`` and ``state_dict()`` produce PyTorch's names
(``features.3.weight``, ``bn.running_mean``) and a PyTorch ``state_dict`` (converted to NumPy
arrays) loads as is. Weights are initialised as PyTorch does (Kaiming-uniform with a = sqrt(5),
i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases) from a seedable generator:
:func:`manual_seed`.

Activations of any layer can be read with forward hooks (``register_forward_hook``) or, more
simply, with :func:`capture`.

Example:
    >>> import numpy as np
    >>> from fastconv.autograd import Tensor
    >>> net = Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), Flatten(), Linear(4 * 8 * 8, 10))
    >>> net(Tensor(np.zeros((2, 1, 8, 8), np.float32))).shape
    (2, 10)
    >>> list(net.state_dict())
    ['0.weight', '0.bias', '3.weight', '3.bias']
"""
from __future__ import annotations

import contextlib
import itertools
import math
from collections import OrderedDict

import numpy as np

from fastconv import ops
from fastconv.autograd import Tensor
from fastconv.backends import get_xp, is_cupy_array, to_numpy
from fastconv.functional import check_activation

_rng = np.random.default_rng()
_hook_ids = itertools.count()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises weights and draws dropout masks."""
    global _rng
    _rng = np.random.default_rng(seed)


def _onto(value, like):
    """``value`` (NumPy, CuPy or a sequence) as an array on ``like``'s device with its dtype."""
    xp = get_xp(like)
    if is_cupy_array(value) and xp is np:
        value = to_numpy(value)
    return xp.asarray(value, dtype=like.dtype)


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad=True)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad)


class _HookHandle:
    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Module:
    """Base class: subclasses assign Parameters / Modules as attributes and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before "
                               f"assigning attributes")
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):  # only called when normal lookup fails
        for d in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(d)
            if table is not None and name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_buffer(self, name: str, array) -> None:
        """A non-learnable array saved in the state_dict (e.g. BatchNorm's running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a Parameter or None) under ``name``."""
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    # ----------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = ""):
        """Yield (name, module) for this module ('' ) and every descendant ('features.3')."""
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return list(self._modules.values())

    def named_parameters(self, prefix: str = ""):
        """Yield (name, Parameter) with PyTorch's dotted names."""
        for mname, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                yield (f"{mname}.{name}" if mname else name), p

    def parameters(self):
        """The learnable Parameters, in registration order (what an optimizer takes)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        for mname, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                yield (f"{mname}.{name}" if mname else name), b

    # ----------------------------------------------------------------- state
    def zero_grad(self) -> None:
        """Drop every parameter's gradient (set to None, as PyTorch 2 does)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> "Module":
        """Training mode (batch statistics, dropout on) for this module and its descendants."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode (running statistics, dropout off)."""
        return self.train(False)

    def to(self, target) -> "Module":
        """Move every parameter and buffer to a device ('cpu', 'cuda') or cast the floating ones to a dtype, in place.

        Example:
            >>> Linear(2, 2).to(np.float64).weight.dtype       # e.g. for gradcheck
            dtype('float64')
        """
        from fastconv.backends import _is_device, to_device
        if _is_device(target):
            def convert(a):
                return to_device(a, target)
        else:
            def convert(a):
                return a.astype(target) if a.dtype.kind == "f" else a
        for m in self.modules():
            for p in m._parameters.values():
                p.data = convert(p.data)
                p.grad = None
            for name, b in m._buffers.items():
                m._buffers[name] = convert(b)
        return self

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer, keyed by PyTorch-compatible dotted names.

        Per module, parameters come before buffers, and a module before its children, as in
        PyTorch.
        """
        out = OrderedDict()
        for mname, m in self.named_modules():
            for name, v in list(m._parameters.items()) + list(m._buffers.items()):
                arr = v.data if isinstance(v, Tensor) else v
                out[f"{mname}.{name}" if mname else name] = arr.copy()
        return out

    def load_state_dict(self, state, strict: bool = True) -> "Module":
        """Copy arrays from ``state`` (name -> array-like) into the parameters and buffers.

        Values are cast to each parameter's dtype. With ``strict``, missing or unexpected
        names raise a KeyError listing them; a shape mismatch always raises a ValueError.
        """
        targets = {}
        for mname, m in self.named_modules():
            for name in list(m._parameters) + list(m._buffers):
                targets[f"{mname}.{name}" if mname else name] = (m, name)
        state = {k: v for k, v in state.items()}
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, (m, name) in targets.items():
            if key not in state:
                continue
            value = state[key]
            if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a PyTorch tensor
                value = value.numpy()
            if name in m._parameters:
                p = m._parameters[name]
                arr = _onto(value, p.data)
                if arr.shape != p.shape:
                    raise ValueError(f"load_state_dict: {key} has shape {tuple(arr.shape)} in the state but "
                                     f"{p.shape} in the model ({m!r})")
                p.data = arr.copy()
            else:
                b = m._buffers[name]
                arr = _onto(value, b)
                if arr.shape != b.shape:
                    raise ValueError(f"load_state_dict: {key} has shape {tuple(arr.shape)} in the state but "
                                     f"{tuple(b.shape)} in the model ({m!r})")
                m._buffers[name] = arr.copy()
        return self

    def save(self, path) -> None:
        """Write the state_dict to an ``.npz`` file (NumPy arrays, no pickle)."""
        state = {k: (v.get() if not isinstance(v, np.ndarray) and hasattr(v, "get") else v)
                 for k, v in self.state_dict().items()}
        np.savez(path, **state)

    def load(self, path, strict: bool = True) -> "Module":
        """Load weights saved by :meth:`save` (or any ``.npz`` of name -> array)."""
        with np.load(path, allow_pickle=False) as z:
            return self.load_state_dict({k: z[k] for k in z.files}, strict)

    # ----------------------------------------------------------------- calling
    def register_forward_hook(self, hook) -> _HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a non-None return replaces the output.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        return _HookHandle(self._forward_hooks, key)

    def __call__(self, *inputs):
        out = self.forward(*inputs)
        for hook in list(self._forward_hooks.values()):
            res = hook(self, inputs, out)
            if res is not None:
                out = res
        return out

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def _check_input(self, x, ndim: int, channels: int | None, layout: str) -> Tensor:
        """``x`` as a Tensor, or a ValueError naming this layer, the shape it got and the one it wants."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != ndim or (channels is not None and x.shape[1] != channels):
            raise ValueError(f"{self!r}: input has shape {x.shape}, expected {layout}")
        return x


@contextlib.contextmanager
def capture(model: Module, names=None):
    """Record the outputs of the named sub-modules during the forwards run inside the block.

    Args:
        model: any Module.
        names: dotted names as in ``named_modules()`` ('features.3'); None records every layer.

    Yields:
        a dict name -> output Tensor (still in the graph, so an objective on it can be
        differentiated w.r.t. the input), filled as the model runs.

    Example:
        >>> net = Sequential(Conv2d(1, 2, 3), ReLU())
        >>> with capture(net, ['0']) as acts:
        ...     _ = net(Tensor(np.zeros((1, 1, 5, 5), np.float32)))
        >>> acts['0'].shape
        (1, 2, 3, 3)
    """
    table = dict(model.named_modules())
    names = [n for n in table if n] if names is None else list(names)
    for n in names:
        if n not in table:
            raise KeyError(f"capture: no sub-module named {n!r}; names are {[k for k in table if k]}")
    acts = {}
    handles = [table[n].register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, o)) for n in names]
    try:
        yield acts
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def frozen(model: Module):
    """Run ``model`` in eval mode with its parameters frozen; restore every mode and flag afterwards.

    Eval mode: BatchNorm uses its running statistics and dropout is off, so each item's output
    depends on that item only. Frozen parameters (``requires_grad=False``) skip every weight
    gradient: a backward pass then costs only the input gradient (what saliency maps, feature
    visualization and attacks need), and the caller's parameter ``.grad`` arrays stay untouched.

    Example:
        >>> net = Sequential(Linear(3, 2))
        >>> with frozen(net):
        ...     net.training, net[0].weight.requires_grad
        (False, False)
        >>> net.training, net[0].weight.requires_grad
        (True, True)
    """
    mods = model.modules()
    modes = [m.training for m in mods]
    params = model.parameters()
    flags = [p.requires_grad for p in params]
    try:
        for m in mods:
            object.__setattr__(m, "training", False)
        for p in params:
            p.requires_grad = False
        yield model
    finally:
        for m, mode in zip(mods, modes):
            object.__setattr__(m, "training", mode)
        for p, f in zip(params, flags):
            p.requires_grad = f


# ----------------------------------------------------------------------------- initialisation
def _uniform(shape, bound, dtype):
    return Parameter(_rng.uniform(-bound, bound, shape).astype(dtype))


def _pair(v, n: int = 2):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


# ----------------------------------------------------------------------------- layers
class _ConvNd(Module):
    _sd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", dtype=np.float32, transposed=False, output_padding=0,
                 activation=None):
        super().__init__()
        self.activation = check_activation(activation)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, self._sd)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.padding_mode, self.output_padding = padding_mode, output_padding
        wshape = ((in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups))
        wshape += self.kernel_size
        fan_in = wshape[1] * math.prod(self.kernel_size)  # PyTorch takes fan_in from dim 1, also when transposed
        bound = 1 / math.sqrt(fan_in)
        self.weight = _uniform(wshape, bound, dtype)
        self.register_parameter("bias", _uniform((out_channels,), bound, dtype) if bias else None)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != 0:
            s += f", padding={self.padding}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.activation is not None:
            s += f", activation={self.activation!r}"
        return s

    def _run(self, fn):
        try:
            return fn()
        except ValueError as e:  # geometry errors name the shapes; add which layer raised them
            raise ValueError(f"{self!r}: {e}") from e


class Conv1d(_ConvNd):
    """1-D convolution layer, as ``torch.nn.Conv1d`` (padding also 'same', 'valid', 'full' or [(lo, hi)])."""
    _sd = 1

    def forward(self, x):
        x = self._check_input(x, 3, self.in_channels, f"(N, {self.in_channels}, L)")
        return self._run(lambda: ops.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                            self.groups, padding_mode=self.padding_mode,
                                            activation=self.activation))


class Conv2d(_ConvNd):
    """2-D convolution layer, as ``torch.nn.Conv2d``.

    Args:
        in_channels, out_channels, kernel_size (int or (kh, kw)), stride, padding (int, (h, w),
        per-axis (low, high) pairs, 'valid', 'same' or 'full'), dilation, groups, bias,
        padding_mode ('zeros', 'reflect', 'replicate', 'circular'), dtype (float32),
        activation (None, 'relu', 'relu6': applied in the convolution's own pass over its output).

    Example:
        >>> Conv2d(3, 8, 3, stride=2, padding='same')(Tensor(np.zeros((1, 3, 9, 9), np.float32))).shape
        (1, 8, 5, 5)
    """

    def forward(self, x):
        x = self._check_input(x, 4, self.in_channels, f"(N, {self.in_channels}, H, W)")
        return self._run(lambda: ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                            self.groups, padding_mode=self.padding_mode,
                                            activation=self.activation))


class ConvTranspose1d(_ConvNd):
    """1-D transposed convolution layer, as ``torch.nn.ConvTranspose1d``."""
    _sd = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, dtype=np.float32, activation=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         dtype=dtype, transposed=True, output_padding=output_padding, activation=activation)

    def forward(self, x):
        x = self._check_input(x, 3, self.in_channels, f"(N, {self.in_channels}, L)")
        return self._run(lambda: ops.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding,
                                                      self.output_padding, self.groups, self.dilation,
                                                      activation=self.activation))


class ConvTranspose2d(ConvTranspose1d):
    """2-D transposed convolution layer, as ``torch.nn.ConvTranspose2d`` (weight (C_in, C_out/groups, kh, kw)).

    Example:
        >>> ConvTranspose2d(4, 2, 4, stride=2, padding=1)(Tensor(np.zeros((1, 4, 5, 5), np.float32))).shape
        (1, 2, 10, 10)
    """
    _sd = 2

    def forward(self, x):
        x = self._check_input(x, 4, self.in_channels, f"(N, {self.in_channels}, H, W)")
        return self._run(lambda: ops.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                                      self.output_padding, self.groups, self.dilation,
                                                      activation=self.activation))


class Linear(Module):
    """``y = x @ W.T + b`` with W (out_features, in_features), as ``torch.nn.Linear``.

    Example:
        >>> Linear(3, 2)(Tensor(np.zeros((4, 3), np.float32))).shape
        (4, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = _uniform((out_features, in_features), bound, dtype)
        self.register_parameter("bias", _uniform((out_features,), bound, dtype) if bias else None)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: input has shape {x.shape}, expected (..., {self.in_features})")
        return ops.linear(x, self.weight, self.bias)


class _BatchNorm(Module):
    _ndims: tuple = (2, 4)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype))
            self.bias = Parameter(np.zeros(num_features, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{self!r}: input has shape {x.shape}, expected {self._layout}")
        use_batch = self.training or not self.track_running_stats
        rm = self.running_mean if self.track_running_stats else None
        rv = self.running_var if self.track_running_stats else None
        if self.training and self.track_running_stats:
            self._buffers["num_batches_tracked"] += 1
        return ops.batch_norm(x, rm, rv, self.weight, self.bias, use_batch, self.momentum, self.eps)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) per channel, as ``torch.nn.BatchNorm2d`` (Ioffe & Szegedy, 2015).

    Training normalises with the batch statistics and updates ``running_mean``/``running_var``
    (momentum 0.1); ``eval()`` normalises with the running statistics.
    """
    _ndims = (4,)

    @property
    def _layout(self):
        return f"(N, {self.num_features}, H, W)"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features, as ``torch.nn.BatchNorm1d``."""
    _ndims = (2,)

    @property
    def _layout(self):
        return f"(N, {self.num_features})"


class _Act(Module):
    _fn = None

    def forward(self, x):
        return type(self)._fn(x)


class ReLU(_Act):
    """max(x, 0)."""
    _fn = staticmethod(ops.relu)


class ReLU6(_Act):
    """min(max(x, 0), 6)."""
    _fn = staticmethod(ops.relu6)


class Sigmoid(_Act):
    """1 / (1 + exp(-x))."""
    _fn = staticmethod(ops.sigmoid)


class Tanh(_Act):
    """tanh(x)."""
    _fn = staticmethod(ops.tanh)


class Identity(Module):
    """Returns its input (a placeholder that keeps layer indices stable)."""

    def forward(self, x):
        return x


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"

    def forward(self, x):
        return ops.leaky_relu(x, self.negative_slope)


class Softmax(Module):
    """softmax along ``dim``."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return ops.softmax(x, self.dim)


class _Pool(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _pool(self, x, fn):
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 4:
            raise ValueError(f"{self!r}: input has shape {x.shape}, expected (N, C, H, W)")
        try:
            return fn(x)
        except ValueError as e:
            raise ValueError(f"{self!r}: {e}") from e


class MaxPool2d(_Pool):
    """Max pooling, as ``torch.nn.MaxPool2d`` (stride defaults to the kernel size)."""

    def forward(self, x):
        return self._pool(x, lambda t: ops.max_pool2d(t, self.kernel_size, self.stride, self.padding))


class AvgPool2d(_Pool):
    """Average pooling, as ``torch.nn.AvgPool2d``."""

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return self._pool(x, lambda t: ops.avg_pool2d(t, self.kernel_size, self.stride, self.padding,
                                                      self.count_include_pad))


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (1 = global average pooling)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self):
        return f"output_size={self.output_size}"

    def forward(self, x):
        x = self._check_input(x, 4, None, "(N, C, H, W)")
        return ops.adaptive_avg_pool2d(x, self.output_size)


class Flatten(Module):
    """Merge axes start_dim..end_dim (default: all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return (x if isinstance(x, Tensor) else Tensor(x)).flatten(self.start_dim, self.end_dim)


class Dropout(Module):
    """Zero each element with probability p during training (scaling the rest by 1/(1-p))."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout probability must be in [0, 1), got {p}")
        self.p = p

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        return ops.dropout(x, self.p, self.training, _rng)


class Upsample(Module):
    """Nearest or bilinear resizing, as ``torch.nn.Upsample`` (then a conv: resize-convolution)."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool = False):
        super().__init__()
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, bool(align_corners)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"

    def forward(self, x):
        x = self._check_input(x, 4, None, "(N, C, H, W)")
        return ops.upsample(x, self.size, self.scale_factor, self.mode, self.align_corners)


class Sequential(Module):
    """Modules applied in order, named '0', '1', ... (or by an OrderedDict's keys).

    A shape error in a layer is re-raised with the layer's name in the chain.

    Example:
        >>> Sequential(Linear(3, 4), ReLU(), Linear(4, 2))[2]
        Linear(in_features=4, out_features=2, bias=True)
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (dict, OrderedDict)):
            for name, m in layers[0].items():
                setattr(self, name, m)
        else:
            for i, m in enumerate(layers):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential takes Modules, got {type(m).__name__} at position {i}")
                setattr(self, str(i), m)

    def __getitem__(self, i):
        items = list(self._modules.values())
        return Sequential(*items[i]) if isinstance(i, slice) else items[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for name, m in self._modules.items():
            try:
                x = m(x)
            except ValueError as e:
                raise ValueError(f"layer '{name}' of Sequential: {e}") from e
        return x
