"""A micrograd-sized reverse-mode autograd on NumPy (or CuPy) arrays.

A :class:`Tensor` wraps an array. Every differentiable op makes a new Tensor that remembers
its parents and a ``backward`` closure mapping the output's gradient to one gradient per
parent. :meth:`Tensor.backward` sorts the graph topologically and walks it in reverse,
summing the gradients that reach each tensor; leaves (tensors made by the user with
``requires_grad=True``) keep theirs in ``.grad``. After the pass the closures (and the arrays
they saved) are released unless ``retain_graph=True``; a second pass through a released graph
raises a RuntimeError.

``.grad`` is a plain array of the tensor's shape, not a Tensor: fastconv computes first
derivatives only.

Example:
    >>> import numpy as np
    >>> x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.])

Reference: A. Karpathy, micrograd (engine.py), 2020; the graph semantics follow PyTorch.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from fastconv.backends import get_xp

_state = threading.local()


def is_grad_enabled() -> bool:
    """False inside a :func:`no_grad` block (per thread)."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context manager (and decorator) in which ops record no graph: inference and updates.

    Example:
        >>> with no_grad():
        ...     y = Tensor(np.ones(2), requires_grad=True) * 2
        >>> y.requires_grad
        False
    """
    prev = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = prev


def _array(data, dtype=None):
    """An array from ``data``; Python numbers and lists become float32, PyTorch's default."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)) or hasattr(data, "__cuda_array_interface__"):
        # NumPy reductions return scalars (np.float32); keep every .data a real array
        data = get_xp(data).asarray(data)
        return data if dtype is None else data.astype(dtype, copy=False)
    return np.asarray(data, dtype=np.float32 if dtype is None else dtype)


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and g.shape[i + extra] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


class Tensor:
    """An array with a gradient: ``requires_grad``, ``.grad``, ``.backward()``.

    Args:
        data: a NumPy or CuPy array (kept as is, dtype included), a number or a nested list
            (made float32).
        requires_grad: make this a leaf whose gradient is accumulated into ``.grad``.

    Arithmetic (+ - * / ** @, unary -) broadcasts as NumPy does and mixes with arrays and
    numbers; a number takes the tensor's dtype so float32 stays float32.
    """

    # ``array op Tensor`` must reach Tensor's reflected operator. NEP 13's opt-out
    # (``__array_ufunc__ = None``) makes NumPy and CuPy both defer; CuPy 14 ignores
    # ``__array_priority__`` for operands without ``__array_ufunc__``, which NumPy < 1.13 needs.
    __array_ufunc__ = None
    __array_priority__ = 100

    def __init__(self, data, requires_grad: bool = False):
        self.data = _array(data)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        if self.requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self._parents: tuple = ()
        self._backward = None  # g -> tuple of parent gradients; None for leaves and freed nodes
        self._op = ""
        self._freed = False
        self._retain = False

    # ----------------------------------------------------------------- graph construction
    @classmethod
    def _make(cls, data, parents, backward, op: str) -> "Tensor":
        """The result of an op: a graph node when grad mode is on and a parent needs a gradient."""
        out = cls(data)
        if is_grad_enabled() and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = tuple(parents)
            out._backward = backward
            out._op = op
        return out

    def _lift(self, other) -> "Tensor":
        if isinstance(other, Tensor):
            return other
        xp = get_xp(self.data)
        return Tensor(xp.asarray(other, dtype=self.data.dtype))

    # ----------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires a gradient.

        Args:
            grad: the gradient of the final objective w.r.t. this tensor (same shape); may be
                omitted only when this tensor holds a single element (it is then 1).
            retain_graph: keep the saved arrays so that backward may run through this graph again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad (no input of "
                               "the computation had requires_grad=True, or it ran under no_grad())")
        xp = get_xp(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a grad argument needs a single-element output, but "
                                   f"this tensor has shape {self.shape}; reduce it (e.g. .sum()) or pass "
                                   f"grad= an array of shape {self.shape}")
            grad = xp.ones_like(self.data)
        else:
            grad = _array(grad, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"grad has shape {tuple(grad.shape)}, but the tensor has shape {self.shape}")

        # iterative post-order DFS (deep graphs must not hit Python's recursion limit); a node
        # is marked when expanded, not when pushed, so it finishes after everything it feeds
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node._freed:
                raise RuntimeError(f"trying to backward through the graph a second time: the arrays saved by "
                                   f"'{node._op}' were freed after the first backward(); call "
                                   f"backward(retain_graph=True) the first time if you need a second pass")
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in seen)

        grads = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None or node._retain:
                node.grad = g if node.grad is None else node.grad + g
            if node._backward is None:
                continue
            for p, pg in zip(node._parents, node._backward(g)):
                if pg is None or not p.requires_grad:
                    continue
                pg = _unbroadcast(pg, p.shape)
                if pg.dtype != p.data.dtype:
                    pg = pg.astype(p.data.dtype)
                prev = grads.get(id(p))
                grads[id(p)] = pg if prev is None else prev + pg
            if not retain_graph:
                node._backward, node._freed = None, True

    def retain_grad(self) -> "Tensor":
        """Keep this intermediate tensor's gradient in ``.grad`` (e.g. an activation for Grad-CAM)."""
        self._retain = True
        return self

    # ----------------------------------------------------------------- plain accessors
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def is_leaf(self) -> bool:
        return not self._parents

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = f", grad_fn={self._op}" if self._op else (", requires_grad=True" if self.requires_grad else "")
        return f"Tensor({self.data!r}{grad})"

    def detach(self) -> "Tensor":
        """The same array, cut from the graph."""
        return Tensor(self.data)

    def to(self, target) -> "Tensor":
        """A copy on a device ('cpu', 'cuda') or of a dtype, as a new leaf with the same requires_grad.

        Example:
            >>> Tensor(np.ones(2, np.float32)).to(np.float64).dtype
            dtype('float64')
        """
        from fastconv.backends import _is_device, to_device
        data = to_device(self.data, target) if _is_device(target) else self.data.astype(target)
        return Tensor(data, self.requires_grad)

    @property
    def device(self) -> str:
        """'cuda' for a CuPy tensor, else 'cpu'."""
        from fastconv.backends import is_cupy_array
        return "cuda" if is_cupy_array(self.data) else "cpu"

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU for a CuPy tensor)."""
        get = getattr(self.data, "get", None)
        return get() if callable(get) and not isinstance(self.data, np.ndarray) else self.data

    def item(self) -> float:
        return self.data.item()

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
        other = self._lift(other)
        return Tensor._make(self.data + other.data, (self, other), lambda g: (g, g), "add")

    def __sub__(self, other):
        other = self._lift(other)
        return Tensor._make(self.data - other.data, (self, other), lambda g: (g, -g), "sub")

    def __mul__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data
        return Tensor._make(a * b, (self, other), lambda g: (g * b, g * a), "mul")

    def __truediv__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data
        return Tensor._make(a / b, (self, other), lambda g: (g / b, -g * a / (b * b)), "div")

    def __neg__(self):
        return Tensor._make(-self.data, (self,), lambda g: (-g,), "neg")

    def __pow__(self, other):
        other = self._lift(other)
        xp = get_xp(self.data)
        a, b = self.data, other.data
        out = a ** b

        def backward(g):
            # d/db a^b = a^b log a, defined where a > 0 (only computed when b needs it)
            gb = g * out * xp.log(xp.where(a > 0, a, 1)) if other.requires_grad else None
            return g * b * a ** (b - 1), gb
        return Tensor._make(out, (self, other), backward, "pow")

    def __radd__(self, other):
        return self._lift(other) + self

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rmul__(self, other):
        return self._lift(other) * self

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def __rpow__(self, other):
        return self._lift(other) ** self

    def __matmul__(self, other):
        other = self._lift(other)
        xp = get_xp(self.data)
        a, b = self.data, other.data
        # promote 1-D operands as numpy.matmul does, so one backward rule covers every case
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        out2 = a2 @ b2

        def backward(g):
            g2 = g.reshape(out2.shape)
            ga = _unbroadcast(g2 @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
            gb = _unbroadcast(xp.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
            return ga, gb
        return Tensor._make(a @ b, (self, other), backward, "matmul")

    def __rmatmul__(self, other):
        return self._lift(other) @ self

    # ----------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False):
        """Sum over ``axis`` (int, tuple or None for all)."""
        xp = get_xp(self.data)
        shape = self.shape

        def backward(g):
            if not keepdims and axis is not None:
                g = xp.expand_dims(g, _axes(axis, len(shape)))
            return (xp.broadcast_to(g, shape),)
        return Tensor._make(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward, "sum")

    def mean(self, axis=None, keepdims: bool = False):
        """Mean over ``axis`` (int, tuple or None for all)."""
        count = self.size if axis is None else int(np.prod([self.shape[a] for a in _axes(axis, self.ndim)]))
        return self.sum(axis, keepdims) * (1.0 / count)

    def max(self, axis=None, keepdims: bool = False):
        """Maximum over ``axis``; the gradient is shared equally among tied maxima (as torch.amax)."""
        xp = get_xp(self.data)
        m = self.data.max(axis=axis, keepdims=True)
        x = self.data

        def backward(g):
            if not keepdims and axis is not None:
                g = xp.expand_dims(g, _axes(axis, x.ndim))
            mask = (x == m)
            return (g * mask / mask.sum(axis=axis, keepdims=True),)
        out = m if keepdims else (m.reshape(()) if axis is None else xp.squeeze(m, _axes(axis, x.ndim)))
        return Tensor._make(out, (self,), backward, "max")

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        old = self.shape
        return Tensor._make(self.data.reshape(shape), (self,), lambda g: (g.reshape(old),), "reshape")

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge axes ``start_dim..end_dim`` into one (PyTorch's ``flatten``)."""
        nd = max(self.ndim, 1)
        s, e = start_dim % nd, end_dim % nd
        shape = self.shape[:s] + (-1,) + self.shape[e + 1:] if self.ndim else (1,)
        return self.reshape(shape)

    def transpose(self, *axes):
        """Permute axes (NumPy's ``transpose``: no argument reverses them)."""
        xp = get_xp(self.data)
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(axes) if axes else tuple(reversed(range(self.ndim)))
        inverse = tuple(int(i) for i in np.argsort(axes))
        return Tensor._make(xp.transpose(self.data, axes), (self,),
                            lambda g: (xp.transpose(g, inverse),), "transpose")

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, index):
        xp = get_xp(self.data)
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        shape, dtype = self.shape, self.data.dtype

        basic = all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice))
                    for i in (index if isinstance(index, tuple) else (index,)))

        def backward(g):
            gx = xp.zeros(shape, dtype)
            if basic:
                gx[index] = g
            else:
                xp.add.at(gx, index, g)  # add.at, not +=: repeated indices must accumulate
            return (gx,)
        return Tensor._make(self.data[index], (self,), backward, "getitem")

    # ----------------------------------------------------------------- elementwise
    def exp(self):
        out = get_xp(self.data).exp(self.data)
        return Tensor._make(out, (self,), lambda g: (g * out,), "exp")

    def log(self):
        x = self.data
        return Tensor._make(get_xp(x).log(x), (self,), lambda g: (g / x,), "log")

    def abs(self):
        xp = get_xp(self.data)
        x = self.data
        return Tensor._make(xp.abs(x), (self,), lambda g: (g * xp.sign(x),), "abs")

    def sqrt(self):
        return self ** 0.5

    def clip(self, lo=None, hi=None):
        """Clamp to [lo, hi]; the gradient passes where the value was inside the range."""
        xp = get_xp(self.data)
        x = self.data
        inside = xp.ones(x.shape, bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        return Tensor._make(xp.clip(x, lo, hi), (self,), lambda g: (g * inside,), "clip")

    def astype(self, dtype):
        """A cast copy; the gradient is cast back to this tensor's dtype."""
        src = self.data.dtype
        return Tensor._make(self.data.astype(dtype), (self,), lambda g: (g.astype(src),), "astype")


def _axes(axis, ndim: int) -> tuple:
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axis)


def tensor(data, requires_grad: bool = False) -> Tensor:
    """Shorthand for ``Tensor(data, requires_grad)``."""
    return Tensor(data, requires_grad)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (NumPy's ``concatenate``, PyTorch's ``cat``)."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    xp = get_xp(tensors[0].data)
    out = xp.concatenate([t.data for t in tensors], axis=axis)
    bounds = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    return Tensor._make(out, tuple(tensors), lambda g: tuple(xp.split(g, bounds, axis=axis)), "concatenate")


def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    return concatenate([t.reshape(t.shape[:axis % (t.ndim + 1)] + (1,) + t.shape[axis % (t.ndim + 1):])
                        for t in tensors], axis)


# --------------------------------------------------------------------- gradient checking
def gradcheck(fn, inputs, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8,
              n_directions: int = 2, seed: int = 0) -> bool:
    """Check the gradients of ``fn(*inputs)`` by float64 central differences along random directions.

    For every input that requires a gradient and every random unit direction ``d``, compares
    ``(f(x + eps d) - f(x - eps d)) / (2 eps)`` with ``<grad f(x), d>``, where ``f`` is the
    output projected on a fixed random array (a plain sum would hide errors that cancel).
    Inputs are perturbed in place (and restored), so ``fn`` may also read them from a closure,
    e.g. the parameters of a module.

    Args:
        fn: callable taking the inputs and returning a Tensor.
        inputs: sequence of float64 Tensors (those with requires_grad=True are checked).
        eps: finite-difference step; rtol, atol: tolerance on each directional derivative.
        n_directions: random directions per input.

    Returns:
        True; raises AssertionError naming the input, the direction and both values otherwise.

    Example:
        >>> x = Tensor(np.random.rand(3, 4), requires_grad=True)
        >>> gradcheck(lambda t: (t * t).exp().sum(axis=1), [x])
        True
    """
    rng = np.random.default_rng(seed)
    inputs = list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for t in checked:
        if t.data.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs (float32 differences are too coarse), got "
                            f"{t.data.dtype} for an input of shape {t.shape}")
    out = fn(*inputs)
    xp = get_xp(out.data)
    proj = xp.asarray(rng.standard_normal(out.shape))

    def f() -> float:
        with no_grad():
            return float((fn(*inputs).data * proj).sum())

    saved = [t.grad for t in checked]
    for t in checked:
        t.grad = None
    out.backward(proj)
    analytic = [xp.zeros(t.shape) if t.grad is None else t.grad for t in checked]
    for t, g in zip(checked, saved):
        t.grad = g
    for k, (t, ga) in enumerate(zip(checked, analytic)):
        for j in range(n_directions):
            d = xp.asarray(rng.standard_normal(t.shape))
            d /= float(xp.linalg.norm(d)) or 1.0
            t.data += eps * d
            fp = f()
            t.data -= 2 * eps * d
            fm = f()
            t.data += eps * d
            numeric = (fp - fm) / (2 * eps)
            exact = float((ga * d).sum())
            if abs(numeric - exact) > atol + rtol * max(abs(numeric), abs(exact), 1.0):
                raise AssertionError(f"gradcheck failed for input {k} (shape {t.shape}), direction {j}: "
                                     f"finite difference {numeric:.10g} vs backward {exact:.10g}")
    return True
