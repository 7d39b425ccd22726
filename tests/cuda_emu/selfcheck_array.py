"""Self-check of the CuPy stand-in's arrays (not a pytest file: run it as a script).

    PYTHONPATH=tests/cuda_emu python tests/cuda_emu/selfcheck_array.py

Checks that views share memory, ``out=`` writes through views, the host/device rules raise as
CuPy's do, reductions stay on the device, and fastconv's backend helpers see these arrays as
CuPy arrays. Needs no kernel (no ``cupy._raw``). Prints one line per check; exits non-zero on
the first failure.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np

import cupy as cp  # the stand-in: the script's directory comes first on sys.path

assert cp.__version__ == "0.0-emulated", f"imported a real CuPy from {cp.__file__}"


def raises(exc, fn, match: str = ""):
    try:
        fn()
    except exc as e:
        assert match in str(e), f"{exc.__name__} raised, but {match!r} is not in {str(e)!r}"
        return
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


def host_of(a):
    return a._host


def check_views_share_memory():
    a = cp.arange(24, dtype=cp.float32).reshape(2, 3, 4)
    assert isinstance(a, cp.ndarray) and not isinstance(a, np.ndarray)
    assert type(a).__module__.startswith("cupy")
    for v in (a[1], a[:, 1:], a.reshape(6, 4), a.ravel(), a.transpose(2, 0, 1), a.T, a.swapaxes(0, 2),
              a[None], a[..., 0], a[0, 0, 0], a.reshape(-1)[3:9]):
        assert np.shares_memory(host_of(v), host_of(a)), v.shape
        assert host_of(v).__array_interface__["data"][0] == v.data.ptr
    s = a[0, 1, 2]
    assert s.shape == () and isinstance(s, cp.ndarray)
    s.fill(-1)                       # a 0-d view writes back, as in CuPy
    assert a.get()[0, 1, 2] == -1
    a[1, :, ::2] = 5.0
    assert (a.get()[1, :, ::2] == 5).all()
    b = a.reshape(6, 4)
    b += 1                           # in place through a view
    assert a.get()[1, 0, 0] == 6
    assert a.flags.c_contiguous and not a[:, :, ::2].flags.c_contiguous and a.T.flags.f_contiguous
    assert a.strides == (48, 16, 4) and a.itemsize == 4 and a.nbytes == 96 and a.size == 24 and a.ndim == 3
    c = a.copy()
    assert not np.shares_memory(host_of(c), host_of(a))
    assert not np.shares_memory(host_of(copy.deepcopy(a)), host_of(a))


def check_out_into_views():
    y = cp.zeros((2, 3, 4, 5), cp.float64)
    yv = y.reshape(2, 3, 4, -1)
    w = cp.asarray(np.random.default_rng(0).standard_normal((3, 4, 6)))
    x = cp.asarray(np.random.default_rng(1).standard_normal((1, 3, 6, 5)))
    r = cp.matmul(w, x, out=yv[1:2])
    assert r is not None and np.shares_memory(host_of(r), host_of(y))
    ref = np.matmul(w.get(), x.get())
    np.testing.assert_allclose(y.get()[1], ref[0])
    assert (y.get()[0] == 0).all()
    z = cp.asarray(np.linspace(-3, 3, 24).reshape(2, 3, 4))
    out = cp.clip(z, -1.0, 1.0, out=z)
    assert out is z and float(z.max()) == 1.0 and float(z.min()) == -1.0
    np.add(z, 1, out=z)
    assert float(z.max()) == 2.0
    s = cp.empty((), cp.float64)
    z.sum(out=s)
    assert float(s) == float(z.get().sum())
    raises(TypeError, lambda: cp.add(z, 1, out=np.empty(z.shape)), "cupy.ndarray")


def check_implicit_conversion_raises():
    a = cp.ones((2, 2), cp.float32)
    msg = "Implicit conversion to a NumPy array is not allowed"
    raises(TypeError, lambda: np.asarray(a), msg)
    raises(TypeError, lambda: np.array(a), msg)
    raises(TypeError, lambda: np.array([a, a]), msg)
    raises(TypeError, lambda: np.testing.assert_allclose(a, 1), msg)
    raises(TypeError, lambda: np.float64(a), msg)
    h = a.get()
    assert type(h) is np.ndarray and h.dtype == np.float32 and not np.shares_memory(h, host_of(a))
    assert type(cp.asnumpy(a)) is np.ndarray and not np.shares_memory(cp.asnumpy(a), host_of(a))


def check_mixing_raises():
    a = cp.ones(3)
    h = np.ones(3)
    msg = "Unsupported type <class 'numpy.ndarray'>"
    for fn in (lambda: a + h, lambda: h + a, lambda: a * h, lambda: h - a, lambda: a @ h,
               lambda: a < h, lambda: np.add(a, h), lambda: cp.add(a, h), lambda: cp.where(a > 0, a, h),
               lambda: cp.concatenate([a, h]), lambda: np.concatenate([a, h]), lambda: cp.maximum(a, h),
               lambda: a + np.float64(1) * h, lambda: cp.matmul(h, a)):
        raises(TypeError, fn, msg)

    def iadd():
        b = cp.ones(3)
        b += h
    raises(TypeError, iadd, msg)

    def host_iadd():
        g = np.ones(3)
        g += a
    raises(TypeError, host_iadd, msg)
    raises(TypeError, lambda: a + [1, 2, 3])
    raises(TypeError, lambda: a.dot(h))
    raises(TypeError, lambda: cp.ascontiguousarray(h))
    raises(ValueError, lambda: a.__setitem__(slice(0, 2), np.ones(2)), "non-scalar numpy.ndarray")
    # scalars mix, Python and NumPy, on either side
    for r in (a + 1, 1 + a, a * np.float32(2), np.float32(2) * a, a ** 2, 2 ** a, -a, abs(a), a / 2,
              np.sqrt(a), cp.exp(a), a == 1, a != None, a > np.float64(0.5)):  # noqa: E711
        assert isinstance(r, cp.ndarray), type(r)
    assert bool((a == np.array(1.0)).all())   # a 0-d host array in a comparison, as CuPy
    # host index arrays and host values of an advanced assignment are copied over, as in CuPy
    b = cp.zeros(5)
    b[np.array([0, 2])] = np.array([1.0, 2.0])
    b[[4]] = 3
    assert b.get().tolist() == [1.0, 0.0, 2.0, 0.0, 3.0]
    assert b[np.array([2, 4])].get().tolist() == [2.0, 3.0]
    assert [p.get().tolist() for p in cp.split(cp.arange(6), np.array([2, 4]))] == [[0, 1], [2, 3], [4, 5]]


class _Lifted:
    """A Tensor-like object that opts out of ufuncs (NEP 13), as fastconv's Tensor does."""
    __array_ufunc__ = None

    def __radd__(self, other):
        return "radd"

    def __rmatmul__(self, other):
        return "rmatmul"


class _PriorityOnly:
    """An operand with a high __array_priority__ and no __array_ufunc__: CuPy 14 does not defer."""
    __array_priority__ = 100

    def __rmatmul__(self, other):
        return "rmatmul"


def check_reflected_ops_defer():
    a = cp.ones(2)
    assert a + _Lifted() == "radd" and a @ _Lifted() == "rmatmul"
    raises(TypeError, lambda: a @ _PriorityOnly())


def check_reductions_are_device_arrays():
    a = cp.asarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    for r in (a.sum(), a.mean(), a.max(), a.min(), a.argmax(), a.any(), a.all(), a.std(), a.var(),
              a.prod(), cp.sum(a), np.sum(a), np.max(a), cp.linalg.norm(a), np.linalg.norm(a),
              cp.array_equal(a, a), a[1, 2], a.sum(axis=(0, 1))):
        assert isinstance(r, cp.ndarray) and r.shape == (), (type(r), getattr(r, "shape", None))
    assert float(a.sum()) == 66.0 and int(a.argmax()) == 11 and a.max().item() == 11.0
    assert a.sum(axis=0).shape == (4,) and a.cumsum().shape == (12,)
    assert a.mean(axis=1, keepdims=True).shape == (3, 1)
    assert f"{a.sum():.1f}" == "66.0" and bool(a.sum() > 1)
    raises(ValueError, lambda: bool(a), "ambiguous")
    raises(TypeError, lambda: len(a.sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert bool(cp.zeros(0)) is False
    assert len(a) == 3 and [r.shape for r in a] == [(4,)] * 3
    assert a.tolist()[2][3] == 11.0


def check_astype_and_transfers():
    h = np.arange(6, dtype=np.float64)
    a = cp.asarray(h)
    assert not np.shares_memory(host_of(a), h)      # a host-to-device copy never aliases
    h[0] = 100
    assert float(a[0]) == 0.0
    assert cp.asarray(a) is a and cp.asarray(a, dtype=cp.float64) is a
    assert cp.asarray(a, dtype=cp.float32).dtype == cp.float32
    b = cp.array(a)
    assert b is not a and not np.shares_memory(host_of(b), host_of(a))
    assert a.astype(cp.float64, copy=False) is a
    c = a.astype(cp.float32)
    assert c.dtype == np.float32 and not np.shares_memory(host_of(c), host_of(a))
    assert a.astype(cp.float64) is not a
    assert cp.asarray(3.5).shape == () and cp.asarray([1, 2]).dtype == np.int64
    assert cp.array([cp.ones(2), cp.zeros(2)]).shape == (2, 2)
    raises(ValueError, lambda: cp.asarray(np.array(["x"])), "Unsupported dtype")
    t = a[::2]
    assert cp.ascontiguousarray(a) is a and cp.ascontiguousarray(t).flags.c_contiguous
    assert not np.shares_memory(host_of(cp.ascontiguousarray(t)), host_of(a))
    e = cp.empty((3, 2), cp.float32)
    assert np.isnan(e.get()).all()                  # uninitialized memory is not zeros
    assert np.isnan(cp.empty_like(a).get()).all()
    out = np.empty(6)
    assert a.get(out=out) is out and out[5] == 5
    a.set(np.full(6, 2.0))
    assert float(a.sum()) == 12.0
    assert cp.get_array_module(a) is cp and cp.get_array_module(h) is np


def check_indexing_and_assignment():
    a = cp.zeros((4, 5), cp.float32)
    a[1] = 1
    a[2, 1:3] = cp.asarray(np.array([2.0, 3.0], np.float32))
    a[3, a[3] == 0] = 4
    a[cp.asarray([0, 0]), cp.asarray([4, 4])] = 9
    a[:, 0] = np.float64(7)
    ref = np.zeros((4, 5), np.float32)
    ref[1] = 1
    ref[2, 1:3] = [2, 3]
    ref[3] = 4
    ref[0, 4] = 9
    ref[:, 0] = 7
    np.testing.assert_array_equal(a.get(), ref)
    g = cp.zeros(4)
    cp.add.at(g, (cp.asarray([0, 1, 1, 3]),), cp.ones(4))   # repeated indices accumulate
    np.add.at(g, np.array([3]), 1.0)
    assert g.get().tolist() == [1.0, 2.0, 0.0, 2.0]
    raises(TypeError, lambda: cp.add.at(cp.zeros(3, cp.int64), cp.asarray([0]), 1), "add.at only supports")
    m = cp.asarray(np.arange(6.0))
    sel = m[m > 2]
    assert sel.get().tolist() == [3.0, 4.0, 5.0] and not np.shares_memory(host_of(sel), host_of(m))
    m.fill(1.5)
    assert float(m.sum()) == 9.0
    assert cp.take(m, np.array([0, 1])).shape == (2,)


def check_namespace():
    assert cp.float32 is np.float32 and cp.dtype is np.dtype and cp.newaxis is None and cp.inf == np.inf
    assert isinstance(cp.add, cp.ufunc) and cp.random.rand(2, 3, dtype=cp.float32).dtype == np.float32
    assert cp.random.random_sample((4,)).shape == (4,) and cp.random.default_rng(0).standard_normal(3).shape == (3,)
    raises(TypeError, lambda: cp.random.rand(2, dtype=cp.int32))
    assert isinstance(cp.zeros(3), cp.ndarray) and isinstance(cp.moveaxis(cp.zeros((2, 3)), 0, 1), cp.ndarray)
    parts = cp.split(cp.arange(6), 3)
    assert isinstance(parts, list) and all(isinstance(p, cp.ndarray) for p in parts)
    assert cp.cuda.runtime.getDeviceCount() == 1 and cp.cuda.Device().id == 0
    with cp.cuda.Device(0) as d:
        d.synchronize()
    cp.cuda.Stream.null.synchronize()
    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
    e0.record(cp.cuda.get_current_stream())
    e1.record()
    e1.synchronize()
    assert cp.cuda.get_elapsed_time(e0, e1) >= 0
    raises(cp.cuda.runtime.CUDARuntimeError, lambda: cp.cuda.Device(1))
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    big = cp.zeros(1 << 20, cp.uint8)
    assert pool.used_bytes() - before >= 1 << 20
    del big
    pool.free_all_blocks()
    assert pool.used_bytes() < before + (1 << 20)
    cai = cp.ones((2, 3))[:, ::2].__cuda_array_interface__
    assert cai["shape"] == (2, 2) and cai["strides"] == (24, 16) and cai["typestr"] == "<f8"


def check_fastconv_backend_helpers():
    from fastconv.backends import get_xp, is_cupy_array, to_device, to_numpy
    h = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    d = to_device(h, "cuda")
    assert is_cupy_array(d) and not is_cupy_array(h) and get_xp(d) is cp and get_xp(h) is np
    assert not np.shares_memory(host_of(d), h)
    assert to_device(d, "cuda") is d
    back = to_device(d, "cpu")
    assert type(back) is np.ndarray and np.array_equal(back, h)
    n = to_numpy(d)
    assert type(n) is np.ndarray and np.array_equal(n, h) and not np.shares_memory(n, host_of(d))
    from fastconv.autograd import Tensor
    t = Tensor(d)
    assert t.device == "cuda" and t.data is d
    assert type(t.to("cpu").data) is np.ndarray and t.to("cpu").to("cuda").device == "cuda"
    assert isinstance((t * 2 + 1).data, cp.ndarray)
    assert isinstance((d * Tensor(cp.ones((2, 3), cp.float32))).data, cp.ndarray)


CHECKS = [check_views_share_memory, check_out_into_views, check_implicit_conversion_raises,
          check_mixing_raises, check_reflected_ops_defer, check_reductions_are_device_arrays,
          check_astype_and_transfers, check_indexing_and_assignment, check_namespace,
          check_fastconv_backend_helpers]

if __name__ == "__main__":
    for check in CHECKS:
        check()
        print(f"ok  {check.__name__}")
    print(f"all {len(CHECKS)} checks passed")
