"""The Tensor core: every op's gradient by float64 central differences, graph semantics, errors."""
import operator
import zlib

import numpy as np
import pytest

from fastconv.autograd import Tensor, concatenate, gradcheck, is_grad_enabled, no_grad, stack


def T(rng, *shape, positive=False):
    a = rng.standard_normal(shape)
    return Tensor(np.abs(a) + 0.5 if positive else a, requires_grad=True)


# name -> (function of the inputs, input shapes, positive inputs)
UNARY_BINARY = {
    "add_broadcast": (lambda a, b: a + b, [(3, 4), (4,)], False),
    "sub_broadcast": (lambda a, b: a - b, [(3, 1), (1, 4)], False),
    "mul_broadcast": (lambda a, b: a * b, [(2, 3, 4), (3, 1)], False),
    "div": (lambda a, b: a / b, [(3, 4), (3, 4)], True),
    "neg": (lambda a: -a, [(5,)], False),
    "pow_scalar": (lambda a: a ** 3, [(3, 4)], False),
    "pow_fractional": (lambda a: a ** 0.5, [(3, 4)], True),
    "pow_tensor": (lambda a, b: a ** b, [(3, 4), (4,)], True),
    "rpow": (lambda a: 2.0 ** a, [(3,)], False),
    "rsub_rdiv": (lambda a: 1.0 - 2.0 / a, [(3, 2)], True),
    "matmul_2d": (lambda a, b: a @ b, [(3, 4), (4, 5)], False),
    "matmul_batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)], False),
    "matmul_vec_mat": (lambda a, b: a @ b, [(4,), (4, 5)], False),
    "matmul_mat_vec": (lambda a, b: a @ b, [(3, 4), (4,)], False),
    "sum_all": (lambda a: a.sum(), [(3, 4)], False),
    "sum_axes": (lambda a: a.sum(axis=(0, 2)), [(2, 3, 4)], False),
    "sum_keepdims": (lambda a: a.sum(axis=1, keepdims=True), [(2, 3, 4)], False),
    "mean_axis": (lambda a: a.mean(axis=-1), [(2, 3, 4)], False),
    "mean_all": (lambda a: a.mean(), [(2, 3)], False),
    "max_axis": (lambda a: a.max(axis=1), [(3, 5)], False),
    "max_all": (lambda a: a.max(), [(3, 5)], False),
    "max_keepdims": (lambda a: a.max(axis=(1, 2), keepdims=True), [(2, 3, 4)], False),
    "reshape": (lambda a: a.reshape(4, 6) * 2, [(2, 3, 4)], False),
    "flatten": (lambda a: a.flatten(1), [(2, 3, 4)], False),
    "transpose": (lambda a: a.transpose(2, 0, 1) * np.arange(3.0), [(2, 3, 6)], False),
    "T": (lambda a: a.T @ a, [(3, 2)], False),
    "getitem_slices": (lambda a: a[1:, ::2, -1], [(3, 4, 2)], False),
    "getitem_repeated_fancy": (lambda a: a[np.array([0, 2, 0]), 1:3], [(3, 4)], False),
    "getitem_bool_mask": (lambda a: a[np.array([True, False, True])], [(3, 2)], False),
    "concatenate": (lambda a, b: concatenate([a, b, a], axis=1), [(2, 3), (2, 1)], False),
    "stack": (lambda a, b: stack([a, b], axis=1), [(2, 3), (2, 3)], False),
    "exp": (lambda a: a.exp(), [(3, 4)], False),
    "log": (lambda a: a.log(), [(3, 4)], True),
    "abs": (lambda a: a.abs(), [(3, 4)], False),
    "sqrt": (lambda a: a.sqrt(), [(3, 4)], True),
    "clip": (lambda a: a.clip(-0.5, 0.7), [(4, 5)], False),
    "clip_low_only": (lambda a: a.clip(0.1), [(4, 5)], False),
    "composite": (lambda a, b: ((a * b).exp().sum(axis=0) / (1 + (b * b).sum())).log(), [(3, 4), (3, 4)], False),
}


@pytest.mark.parametrize("name", sorted(UNARY_BINARY))
def test_gradients_by_central_differences(name):
    fn, shapes, positive = UNARY_BINARY[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    inputs = [T(rng, *s, positive=positive) for s in shapes]
    assert gradcheck(fn, inputs, n_directions=3)


def test_forward_values_match_numpy(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    ta, tb = Tensor(a), Tensor(b)
    np.testing.assert_allclose(((ta * tb - tb / 2) @ tb).data, (a * b - b / 2) @ b)
    np.testing.assert_allclose(ta.max(axis=0).data, a.max(axis=0))
    np.testing.assert_allclose(ta.transpose().reshape(2, 6).data, a.T.reshape(2, 6))
    np.testing.assert_allclose(concatenate([ta, ta], 0).data, np.concatenate([a, a], 0))


def test_gradcheck_detects_a_wrong_gradient(rng):
    x = T(rng, 4, 3)

    def wrong_square(t):  # d(t^2)/dt is 2t; this backward says t
        return Tensor._make(t.data ** 2, (t,), lambda g: (g * t.data,), "wrong")

    with pytest.raises(AssertionError, match="gradcheck failed"):
        gradcheck(wrong_square, [x])
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2, [Tensor(np.ones(3, np.float32), requires_grad=True)])


def test_max_gradient_splits_ties():
    x = Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5])


def test_gradients_accumulate_over_uses_and_calls():
    x = Tensor(np.array([2.0, -1.0]), requires_grad=True)
    y = x * x + x * 3  # x feeds two branches: 2x + 3
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [7.0, 1.0])
    (x * 2).sum().backward()  # a second graph adds to the same .grad
    np.testing.assert_allclose(x.grad, [9.0, 3.0])


def test_diamond_graph_finishes_shared_node_before_its_parents():
    x = Tensor(np.array([1.5]), requires_grad=True)
    a = x.exp()
    b = a * a           # a reached through two paths of different lengths
    c = (b + a).log()   # d/dx log(e^2x + e^x) = (2 e^2x + e^x) / (e^2x + e^x)
    c.backward()
    e = np.exp(1.5)
    np.testing.assert_allclose(x.grad, [(2 * e * e + e) / (e * e + e)])


def test_retain_graph_allows_a_second_pass_and_doubles_grad(rng):
    x = T(rng, 3)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_second_backward_through_freed_graph_raises(rng):
    x = T(rng, 3)
    h = x.exp()
    y = h.sum()
    y.backward()
    assert h._backward is None  # the closure, and the arrays it saved, were released
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 2).sum().backward()  # a new graph reaching the freed one


def test_backward_on_non_scalar_needs_grad(rng):
    x = T(rng, 2, 3)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*\.sum\(\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\)"):
        y.backward(np.ones(3))
    y.backward(np.ones((2, 3)))
    np.testing.assert_allclose(x.grad, np.full((2, 3), 2.0))


def test_backward_without_grad_flag_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor(np.ones(2)) * 2).sum().backward()
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.arange(3), requires_grad=True)


def test_no_grad_records_nothing_and_restores():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf

    @no_grad()
    def f(t):
        return t + 1
    assert not f(x).requires_grad
    assert (x + 1).requires_grad


def test_constants_get_no_gradient(rng):
    x, c = T(rng, 3), Tensor(rng.standard_normal(3))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad, c.data)


def test_detach_and_numpy(rng):
    x = T(rng, 3)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    assert isinstance(d.numpy(), np.ndarray)
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, d.data)


def test_retain_grad_keeps_an_intermediate_gradient(rng):
    x = T(rng, 3)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(x.grad, 6 * h.data)


def test_float32_stays_float32_with_python_numbers():
    x = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    y = ((x * 2 + 1) / 3 - 0.5) ** 2
    assert y.dtype == np.float32
    y.mean().backward()
    assert x.grad.dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float32  # PyTorch's default for Python data
    z = x.astype(np.float64)
    z.sum().backward()
    assert z.dtype == np.float64 and x.grad.dtype == np.float32


def test_numpy_array_on_the_left_makes_a_tensor(rng):
    x = T(rng, 3)
    y = np.ones(3) * x + np.ones(3)
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.ones(3))
    # every binary operator, @ included (the adaptive pooling matrices multiply from the left)
    a = np.arange(1.0, 4.0)
    for op in (operator.add, operator.sub, operator.mul, operator.truediv, operator.pow):
        assert isinstance(op(a, x), Tensor), op
    m = np.full((2, 3), 0.5)
    z = m @ x
    assert isinstance(z, Tensor) and z.shape == (2,)
    x.grad = None
    z.sum().backward()
    np.testing.assert_allclose(x.grad, m.sum(axis=0))


def test_deep_graph_does_not_recurse():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + x
    y.backward()
    np.testing.assert_allclose(x.grad, [5001.0])
