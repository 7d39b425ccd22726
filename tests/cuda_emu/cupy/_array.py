"""The stand-in's ``ndarray`` and the rules by which NumPy work is done on "device" arrays.

A :class:`ndarray` owns nothing but ``_host``, a NumPy array (often a view) whose memory plays
the part of device memory: the emulated kernels read and write it through its data pointer,
and views (slices, ``reshape``, ``transpose``) share it exactly as CuPy views share device
memory. Every operation unwraps the device arrays among its arguments, runs NumPy on the host
views and wraps the arrays it returns, so results, views and in-place writes (``out=``,
``+=``, slice assignment) behave as in CuPy.

What CuPy forbids is forbidden here with CuPy's exception:

* a NumPy array as an operand of an operator, a ufunc or an array function: ``TypeError``
  ("Unsupported type <class 'numpy.ndarray'>"); only Python and NumPy scalars mix in. A few
  arguments that CuPy copies to the device itself (index arrays, ``split`` points, pad
  widths, the values of an advanced-index assignment) may be host arrays, as in CuPy;
* ``numpy.asarray(device_array)`` (``__array__``): ``TypeError``, use ``.get()``;
* assigning a non-scalar NumPy array through a basic index (``a[1:3] = host``): ``ValueError``.

Reductions and scalar indexing return 0-d device arrays, as CuPy's do.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

from cupy import cuda

_PY_SCALARS = (int, float, bool, complex)
_COMPARISONS = frozenset({"less", "less_equal", "equal", "not_equal", "greater", "greater_equal"})

#: function/method name -> (position, keyword) of the argument CuPy copies to the device itself
_HOST_ARGS = {
    "split": (1, "indices_or_sections"), "array_split": (1, "indices_or_sections"),
    "hsplit": (1, "indices_or_sections"), "vsplit": (1, "indices_or_sections"),
    "dsplit": (1, "indices_or_sections"), "take": (1, "indices"), "pad": (1, "pad_width"),
}

#: functions for which NumPy returns a Python scalar where CuPy returns a 0-d device array
_DEVICE_SCALAR_RESULTS = frozenset({"array_equal", "array_equiv", "allclose", "count_nonzero"})

#: ufunc name -> dtypes its ``.at`` supports with integer-array indices (CuPy's atomics)
_AT_DTYPES = {
    "add": ("int32", "float16", "float32", "float64", "uint32", "uint64"),
    "subtract": ("int32", "uint32"),
    "maximum": ("int32", "float32", "float64", "uint32", "uint64"),
    "minimum": ("int32", "float32", "float64", "uint32", "uint64"),
    "bitwise_and": ("int32", "int64", "uint32", "uint64"),
    "bitwise_or": ("int32", "int64", "uint32", "uint64"),
    "bitwise_xor": ("int32", "int64", "uint32", "uint64"),
}


# ----------------------------------------------------------------------------- argument rules
def _unsupported(x) -> TypeError:
    return TypeError(f"Unsupported type {type(x)}")


def is_scalar(x) -> bool:
    """A Python or NumPy number: what CuPy accepts beside device arrays."""
    return type(x) in _PY_SCALARS or (isinstance(x, np.generic) and x.dtype.kind in "biufc")


def unwrap(x, allow_host: bool = False):
    """``x`` with every device array (also inside lists and tuples) replaced by its host view.

    A NumPy array is a TypeError unless ``allow_host`` (an argument CuPy copies itself).
    """
    if isinstance(x, ndarray):
        return x._host
    if isinstance(x, np.ndarray):
        if allow_host:
            return x
        raise _unsupported(x)
    if type(x) in (list, tuple):
        return type(x)(unwrap(v, allow_host) for v in x)
    return x


def wrap(r):
    """A NumPy result as device arrays: arrays and NumPy scalars (as 0-d), also inside tuples/lists."""
    if isinstance(r, np.ndarray):
        return ndarray._wrap(r)
    if isinstance(r, np.generic):
        return ndarray._wrap(np.asarray(r))
    if type(r) in (list, tuple):
        return type(r)(wrap(v) for v in r)
    return r


def _check_out(out):
    """``out=`` as host arrays; it must be a device array (or a tuple of them)."""
    outs = out if isinstance(out, tuple) else (out,)
    for o in outs:
        if not isinstance(o, ndarray):
            raise TypeError(f"Output arguments type must be cupy.ndarray, got {type(o)}")
    return tuple(o._host for o in outs) if isinstance(out, tuple) else out._host


def call(func, args, kwargs, name: str | None = None):
    """``func`` (a NumPy function) on the host views of ``args``; ndarray results come back wrapped.

    ``out=`` must be a device array, and is what is returned when NumPy returns it.
    """
    pos, key = _HOST_ARGS.get(name or func.__name__, (None, None))
    hosts = [unwrap(a, i == pos) for i, a in enumerate(args)]
    kw = {k: unwrap(v, k == key) for k, v in kwargs.items() if k != "out"}
    out = kwargs.get("out")
    if out is not None:
        kw["out"] = _check_out(out)
    r = func(*hosts, **kw)
    if out is not None and r is kw["out"]:
        return out
    if is_scalar(r) and (name or func.__name__) in _DEVICE_SCALAR_RESULTS:
        r = np.asarray(r)
    return wrap(r)


def function(np_func):
    """The device version of a NumPy function (see :func:`call`)."""
    @functools.wraps(np_func)
    def f(*args, **kwargs):
        return call(np_func, args, kwargs)
    f.__module__ = "cupy"
    return f


def _operand(x, comparison: bool = False):
    if isinstance(x, ndarray):
        return x._host
    if comparison and isinstance(x, np.ndarray) and x.ndim == 0:
        return x.item()  # CuPy's workaround for numpy/numpy#12142, comparisons only
    if is_scalar(x):
        return x
    raise _unsupported(x)


def _ufunc_call(uf: np.ufunc, method: str, inputs, kwargs, comparison: bool = False):
    hosts = tuple(_operand(x, comparison) for x in inputs)
    kw = dict(kwargs)
    out = kw.get("out")
    if out is not None:
        kw["out"] = _check_out(out)
    if "where" in kw:
        kw["where"] = _operand(kw["where"])
    r = getattr(uf, method)(*hosts, **kw)
    return out if out is not None else wrap(r)


def _should_use_rop(x, y) -> bool:
    """CuPy 14's rule for ``x op y`` with a non-CuPy ``y``: defer to ``y``'s reflected operator?

    Only when ``y.__array_ufunc__ is None`` (NEP 13's opt-out). Seen on CuPy 14.2 on a real GPU:
    an operand with ``__array_priority__ = 100`` and no ``__array_ufunc__`` is not deferred to;
    ``cupy_array @ obj`` goes to ``numpy.matmul`` and fails with a TypeError.
    """
    return getattr(y, "__array_ufunc__", NotImplemented) is None


# ----------------------------------------------------------------------------- indexing
def _items(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _is_basic(key) -> bool:
    """Only slices, integers, None and Ellipsis: the result is a view (CuPy: also for all-integer keys)."""
    return all(k is None or k is Ellipsis or isinstance(k, slice)
               or (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)))
               for k in _items(key))


def _index(key):
    """The host index of a CuPy index: device index arrays as host views; host arrays and lists
    are allowed (CuPy copies them to the device)."""
    if isinstance(key, tuple):
        return tuple(unwrap(k, allow_host=True) for k in key)
    return unwrap(key, allow_host=True)


def _scalar_value(value):
    """A value assigned through a basic index or ``fill``: CuPy runs its fill kernel on a scalar."""
    if isinstance(value, np.ndarray):
        if value.ndim:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        return value.item()
    if not is_scalar(value):
        raise _unsupported(value)
    return value


def _is_mask(key) -> bool:
    arrays = [k for k in _items(key) if isinstance(k, (ndarray, np.ndarray, list))]
    return len(arrays) == 1 and np.asarray(unwrap(arrays[0], True)).dtype == np.bool_


# ----------------------------------------------------------------------------- ndarray
def _method(name: str):
    np_method = getattr(np.ndarray, name)

    def m(self, *args, **kwargs):
        return call(np_method, (self,) + args, kwargs, name)
    m.__name__ = m.__qualname__ = name
    m.__doc__ = f"NumPy's ``ndarray.{name}`` on the device array."
    return m


def _binary(uf: np.ufunc):
    def op(self, other):
        if not isinstance(other, ndarray) and _should_use_rop(self, other):
            return NotImplemented
        return _ufunc_call(uf, "__call__", (self, other), {})
    return op


def _reflected(uf: np.ufunc):
    def op(self, other):
        return _ufunc_call(uf, "__call__", (other, self), {})
    return op


def _inplace(uf: np.ufunc):
    def op(self, other):
        _ufunc_call(uf, "__call__", (self, other), {"out": self})
        return self
    return op


def _unary(uf: np.ufunc):
    def op(self):
        return _ufunc_call(uf, "__call__", (self,), {})
    return op


def _compare(uf: np.ufunc):
    name = uf.__name__

    def op(self, other):
        if not isinstance(other, ndarray):
            if _should_use_rop(self, other):
                return NotImplemented
            # CuPy: an object with object's own __eq__ (or None) equals no element
            if name in ("equal", "not_equal") and (other is None or type(other).__eq__ is object.__eq__):
                return ndarray._wrap(np.full(self.shape, name == "not_equal"))
        return _ufunc_call(uf, "__call__", (self, other), {}, comparison=True)
    return op


def garbage(host: np.ndarray) -> np.ndarray:
    """Fill a fresh allocation with 0xFF bytes (NaN, -1): device memory starts undefined, and a
    kernel that leaves an element unwritten must show it."""
    host.ravel(order="K").view(np.uint8).fill(0xFF)
    return host


class Flags:
    """``ndarray.flags``: c_contiguous, f_contiguous, owndata (also by NumPy's upper-case names)."""

    def __init__(self, host: np.ndarray):
        self.c_contiguous = bool(host.flags.c_contiguous)
        self.f_contiguous = bool(host.flags.f_contiguous)
        self.owndata = bool(host.flags.owndata)

    def __getitem__(self, name: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]

    def __repr__(self) -> str:
        return (f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n"
                f"  OWNDATA : {self.owndata}")


class ndarray:
    """A device array: ``_host`` is the NumPy view of its (emulated) device memory.

    ``cupy.ndarray(shape, dtype)`` allocates uninitialized memory, as CuPy's constructor does.
    """

    __slots__ = ("_host", "__weakref__")

    def __init__(self, shape, dtype=float, *, order: str = "C"):
        self._host = garbage(np.empty(shape, dtype, order))
        cuda.track(self._host)

    @classmethod
    def _wrap(cls, host: np.ndarray) -> "ndarray":
        a = object.__new__(cls)
        a._host = host
        cuda.track(host)
        return a

    # ----------------------------------------------------------------- attributes
    shape = property(lambda self: self._host.shape, doc="Lengths of the axes.")
    dtype = property(lambda self: self._host.dtype)
    ndim = property(lambda self: self._host.ndim)
    size = property(lambda self: self._host.size)
    itemsize = property(lambda self: self._host.itemsize)
    nbytes = property(lambda self: self._host.nbytes)
    strides = property(lambda self: self._host.strides, doc="Strides in bytes.")
    T = property(lambda self: ndarray._wrap(self._host.T))

    @property
    def flags(self) -> Flags:
        return Flags(self._host)

    @property
    def data(self) -> cuda.MemoryPointer:
        """The memory pointer; ``.data.ptr`` is the address the kernels get."""
        return cuda.MemoryPointer(self._host.__array_interface__["data"][0])

    @property
    def device(self) -> cuda.Device:
        return cuda.Device(0)

    @property
    def __cuda_array_interface__(self) -> dict:
        h = self._host
        return {"shape": h.shape, "typestr": h.dtype.str, "descr": h.dtype.descr, "stream": 1,
                "version": 3, "strides": None if h.flags.c_contiguous else h.strides,
                "data": (h.__array_interface__["data"][0] if h.size else 0, False)}

    # ----------------------------------------------------------------- NumPy interop
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        operands = inputs + (kwargs["out"] if "out" in kwargs else ())
        if any(not (isinstance(x, (ndarray, np.ndarray)) or is_scalar(x)) for x in operands):
            return NotImplemented
        if "out" in kwargs:
            if len(kwargs["out"]) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = kwargs["out"][0]
        if method == "__call__":
            return _ufunc_call(uf, method, inputs, kwargs, comparison=uf.__name__ in _COMPARISONS)
        m = getattr(ufunc(uf), method, None)  # at, reduce, accumulate, outer
        return NotImplemented if m is None else m(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        import cupy
        try:
            module = functools.reduce(getattr, func.__module__.split(".")[1:], cupy)
            cupy_func = getattr(module, func.__name__)
        except AttributeError:
            return NotImplemented
        if not all(issubclass(t, (ndarray, np.ndarray)) for t in types):
            return NotImplemented
        return cupy_func(*args, **kwargs)

    # ----------------------------------------------------------------- transfer and conversion
    def get(self, stream=None, order: str = "C", out: np.ndarray | None = None, blocking: bool = True):
        """A NumPy copy (into ``out`` if given, which must match in shape and dtype)."""
        if out is None:
            return np.array(self._host, order=order, copy=True)
        if not isinstance(out, np.ndarray):
            raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
        if out.dtype != self.dtype:
            raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
        if out.shape != self.shape:
            raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
        out[...] = self._host
        return out

    def set(self, arr: np.ndarray, stream=None) -> None:
        """Copy the host array ``arr`` (same shape and dtype) into this array."""
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        self._host[...] = arr

    def item(self, *args):
        return self._host.item(*args)

    def tolist(self):
        return self._host.tolist()

    def __float__(self):
        return float(self._host)

    def __int__(self):
        return int(self._host)

    def __complex__(self):
        return complex(self._host)

    def __bool__(self):
        if self.size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, but in "
                          "future this will result in an error. Use `array.size > 0` to check that "
                          "an array is not empty.", DeprecationWarning, stacklevel=2)
            return False
        if self.size == 1:
            return bool(self._host)
        raise ValueError("The truth value of an array with more than one element is ambiguous. "
                         "Use a.any() or a.all()")

    def __repr__(self) -> str:
        return repr(self._host)

    def __str__(self) -> str:
        return str(self._host)

    def __format__(self, spec: str) -> str:
        return format(self._host, spec)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # ----------------------------------------------------------------- container
    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key):
        idx = _index(key)
        if _is_basic(key):
            # NumPy gives a scalar for an all-integer key; CuPy a 0-d view: '...' makes it a view
            if not any(k is Ellipsis for k in _items(idx)):
                idx = _items(idx) + (Ellipsis,)
            return ndarray._wrap(self._host[idx])
        return ndarray._wrap(np.asarray(self._host[idx]))

    def __setitem__(self, key, value):
        idx = _index(key)
        if isinstance(value, ndarray):
            self._host[idx] = value._host
        elif _is_basic(key):
            self._host[idx] = _scalar_value(value)
        else:  # advanced indexing: CuPy copies host values to the device itself
            self._host[idx] = np.asarray(unwrap(value, allow_host=True), self.dtype)

    # ----------------------------------------------------------------- methods
    def astype(self, dtype, order: str = "K", casting=None, subok=None, copy: bool = True):
        if not copy and np.dtype(dtype) == self.dtype and order in ("K", "A"):
            return self
        return ndarray._wrap(self._host.astype(dtype, order=order, casting=casting or "unsafe"))

    def copy(self, order: str = "C"):
        return ndarray._wrap(self._host.copy(order))

    def fill(self, value) -> None:
        if isinstance(value, ndarray):
            if value.ndim:
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            self._host.fill(value._host)
        else:
            self._host.fill(_scalar_value(value))

    def dot(self, b, out=None):
        if not isinstance(b, ndarray):
            raise TypeError(f"Argument 'b' has incorrect type (expected cupy.ndarray, got {type(b).__name__})")
        return call(np.dot, (self, b), {} if out is None else {"out": out})

    reshape = _method("reshape")
    ravel = _method("ravel")
    flatten = _method("flatten")
    transpose = _method("transpose")
    swapaxes = _method("swapaxes")
    squeeze = _method("squeeze")
    view = _method("view")
    take = _method("take")
    repeat = _method("repeat")
    diagonal = _method("diagonal")
    nonzero = _method("nonzero")
    sort = _method("sort")
    argsort = _method("argsort")
    sum = _method("sum")
    prod = _method("prod")
    mean = _method("mean")
    var = _method("var")
    std = _method("std")
    max = _method("max")
    min = _method("min")
    argmax = _method("argmax")
    argmin = _method("argmin")
    any = _method("any")
    all = _method("all")
    cumsum = _method("cumsum")
    cumprod = _method("cumprod")
    clip = _method("clip")
    round = _method("round")
    trace = _method("trace")
    conj = _method("conj")
    tobytes = _method("tobytes")

    # ----------------------------------------------------------------- operators
    __add__, __radd__, __iadd__ = _binary(np.add), _reflected(np.add), _inplace(np.add)
    __sub__, __rsub__, __isub__ = _binary(np.subtract), _reflected(np.subtract), _inplace(np.subtract)
    __mul__, __rmul__, __imul__ = _binary(np.multiply), _reflected(np.multiply), _inplace(np.multiply)
    __matmul__, __rmatmul__ = _binary(np.matmul), _reflected(np.matmul)
    __truediv__, __rtruediv__, __itruediv__ = (_binary(np.true_divide), _reflected(np.true_divide),
                                               _inplace(np.true_divide))
    __floordiv__, __rfloordiv__, __ifloordiv__ = (_binary(np.floor_divide), _reflected(np.floor_divide),
                                                  _inplace(np.floor_divide))
    __mod__, __rmod__, __imod__ = _binary(np.remainder), _reflected(np.remainder), _inplace(np.remainder)
    __divmod__, __rdivmod__ = _binary(np.divmod), _reflected(np.divmod)
    __pow__, __rpow__, __ipow__ = _binary(np.power), _reflected(np.power), _inplace(np.power)
    __lshift__, __rlshift__, __ilshift__ = _binary(np.left_shift), _reflected(np.left_shift), _inplace(np.left_shift)
    __rshift__, __rrshift__, __irshift__ = (_binary(np.right_shift), _reflected(np.right_shift),
                                            _inplace(np.right_shift))
    __and__, __rand__, __iand__ = _binary(np.bitwise_and), _reflected(np.bitwise_and), _inplace(np.bitwise_and)
    __or__, __ror__, __ior__ = _binary(np.bitwise_or), _reflected(np.bitwise_or), _inplace(np.bitwise_or)
    __xor__, __rxor__, __ixor__ = _binary(np.bitwise_xor), _reflected(np.bitwise_xor), _inplace(np.bitwise_xor)
    __neg__, __pos__, __abs__, __invert__ = (_unary(np.negative), _unary(np.positive), _unary(np.absolute),
                                             _unary(np.invert))
    __lt__, __le__, __gt__, __ge__ = (_compare(np.less), _compare(np.less_equal), _compare(np.greater),
                                      _compare(np.greater_equal))
    __eq__, __ne__ = _compare(np.equal), _compare(np.not_equal)
    __hash__ = None


ndarray.__module__ = "cupy"


# ----------------------------------------------------------------------------- ufuncs
class ufunc:
    """A NumPy ufunc on device arrays: operands are device arrays or scalars, ``out=`` a device array."""

    def __init__(self, np_ufunc: np.ufunc):
        self._uf = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.__doc__ = np_ufunc.__doc__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args, **kwargs):
        return _ufunc_call(self._uf, "__call__", args, kwargs)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims: bool = False):
        """CuPy reduces with add (``sum``) and multiply (``prod``) only."""
        if self.__name__ not in ("add", "multiply"):
            raise NotImplementedError(f"`{self.__name__}.reduce` is not supported yet")
        return _ufunc_call(self._uf, "reduce", (array,),
                           dict(axis=axis, dtype=dtype, out=out, keepdims=keepdims))

    def accumulate(self, array, axis=0, dtype=None, out=None):
        """CuPy accumulates with add (``cumsum``) and multiply (``cumprod``) only."""
        if self.__name__ not in ("add", "multiply"):
            raise NotImplementedError(f"`{self.__name__}.accumulate` is not supported yet")
        return _ufunc_call(self._uf, "accumulate", (array,), dict(axis=axis, dtype=dtype, out=out))

    def outer(self, a, b, **kwargs):
        """Every pair of elements of ``a`` and ``b`` (host operands are copied over, as in CuPy)."""
        import cupy
        a, b = cupy.asarray(a), cupy.asarray(b)
        return self(a.reshape(a.shape + (1,) * b.ndim), b, **kwargs)

    def at(self, a, indices, b=None) -> None:
        """In place on ``a`` at ``indices`` (repeated indices accumulate, as with CUDA atomics).

        As CuPy: only the ufuncs with a scatter kernel; with integer-array indices only the
        dtypes that have atomics; index arrays and ``b`` may live on the host.
        """
        if self.__name__ not in _AT_DTYPES:
            raise NotImplementedError(f"`{self.__name__}.at` is not supported yet")
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        if not _is_basic(indices) and not _is_mask(indices) and a.dtype.name not in _AT_DTYPES[self.__name__]:
            raise TypeError(f"cupy.{self.__name__}.at only supports "
                            f"{', '.join(_AT_DTYPES[self.__name__])} as data type")
        if isinstance(b, ndarray):
            value = b._host
        elif _is_basic(indices):  # CuPy: an in-place ufunc on the view
            value = _operand(b)
        else:  # CuPy copies host values for its scatter kernel
            value = np.asarray(unwrap(b, allow_host=True), a.dtype)
        self._uf.at(a._host, _index(indices), value)

