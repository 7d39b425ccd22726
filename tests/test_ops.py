"""Differentiable ops: gradients by central differences, the conv adjoint identity, PyTorch as oracle."""
import zlib

import numpy as np
import pytest

from fastconv import ops
from fastconv import pool as P
from fastconv.autograd import Tensor, gradcheck


def T(rng, *shape, positive=False):
    a = rng.standard_normal(shape)
    return Tensor(np.abs(a) + 0.5 if positive else a, requires_grad=True)


TARGET = np.array([2, 0, 4])

# name -> (op on the inputs, input shapes)
OPS = {
    "conv1d": (lambda x, w, b: ops.conv1d(x, w, b, stride=2, padding=[(1, 2)], dilation=2), [(2, 2, 9), (3, 2, 3), (3,)]),
    "conv1d_same_groups": (lambda x, w: ops.conv1d(x, w, padding="same", groups=2), [(1, 4, 7), (2, 2, 4)]),
    "conv1d_circular": (lambda x, w: ops.conv1d(x, w, padding=2, padding_mode="circular"), [(1, 2, 6), (2, 2, 3)]),
    "conv2d": (lambda x, w, b: ops.conv2d(x, w, b, stride=(2, 1), padding=1), [(2, 3, 6, 5), (4, 3, 3, 2), (4,)]),
    "conv2d_same_stride": (lambda x, w: ops.conv2d(x, w, stride=2, padding="same"), [(1, 2, 7, 6), (3, 2, 3, 3)]),
    "conv2d_dilated_groups": (lambda x, w: ops.conv2d(x, w, padding=((1, 0), (2, 1)), dilation=(2, 1), groups=2),
                              [(1, 4, 6, 5), (4, 2, 2, 3)]),
    "conv2d_depthwise": (lambda x, w: ops.conv2d(x, w, padding=1, groups=3), [(2, 3, 5, 5), (3, 1, 3, 3)]),
    "conv2d_reflect": (lambda x, w, b: ops.conv2d(x, w, b, padding=(1, 2), padding_mode="reflect"),
                       [(1, 2, 5, 6), (2, 2, 3, 3), (2,)]),
    "conv2d_replicate": (lambda x, w: ops.conv2d(x, w, stride=2, padding="same", padding_mode="replicate"),
                         [(1, 2, 5, 6), (2, 2, 3, 3)]),
    "conv_transpose1d": (lambda x, w, b: ops.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2),
                         [(2, 2, 4), (2, 3, 4), (3,)]),
    "conv_transpose2d": (lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=(1, 0)),
                         [(1, 2, 3, 4), (2, 3, 3, 3), (3,)]),
    "conv_transpose2d_groups_dilation": (lambda x, w: ops.conv_transpose2d(x, w, stride=(1, 2), groups=2, dilation=2),
                                         [(1, 4, 3, 3), (4, 1, 2, 2)]),
    "pad_reflect": (lambda x: ops.pad(x, [(2, 1), (0, 3)], "reflect"), [(1, 2, 4, 5)]),
    "pad_circular": (lambda x: ops.pad(x, [(1, 2)], "circular"), [(2, 3)]),
    "linear": (lambda x, w, b: ops.linear(x, w, b), [(4, 3), (5, 3), (5,)]),
    "linear_3d": (lambda x, w: ops.linear(x, w), [(2, 4, 3), (5, 3)]),
    "relu": (ops.relu, [(4, 5)]),
    "relu6": (lambda x: ops.relu6(x * 5), [(4, 5)]),
    "leaky_relu": (lambda x: ops.leaky_relu(x, 0.2), [(4, 5)]),
    "sigmoid": (ops.sigmoid, [(4, 5)]),
    "tanh": (ops.tanh, [(4, 5)]),
    "softmax": (lambda x: ops.softmax(x, axis=1), [(2, 4, 3)]),
    "log_softmax": (ops.log_softmax, [(3, 5)]),
    "cross_entropy": (lambda x: ops.cross_entropy(x, TARGET), [(3, 5)]),
    "cross_entropy_sum": (lambda x: ops.cross_entropy(x, TARGET, reduction="sum"), [(3, 5)]),
    "mse_loss": (lambda x, y: ops.mse_loss(x, y), [(3, 4), (3, 4)]),
    "max_pool2d": (lambda x: ops.max_pool2d(x, 2), [(2, 2, 4, 6)]),
    "max_pool2d_overlap_pad": (lambda x: ops.max_pool2d(x, (3, 2), stride=(2, 1), padding=1), [(1, 2, 7, 5)]),
    "avg_pool2d": (lambda x: ops.avg_pool2d(x, 3, stride=2, padding=1), [(1, 2, 7, 6)]),
    "avg_pool2d_exclude_pad": (lambda x: ops.avg_pool2d(x, (2, 3), 1, (1, 1), count_include_pad=False), [(1, 2, 4, 5)]),
    "adaptive_avg_pool2d": (lambda x: ops.adaptive_avg_pool2d(x, (3, 2)), [(2, 2, 7, 5)]),
    "global_avg_pool2d": (ops.global_avg_pool2d, [(2, 3, 4, 5)]),
    "batch_norm_train": (lambda x, w, b: ops.batch_norm(x, np.zeros(3), np.ones(3), w, b, training=True),
                         [(4, 3, 2, 3), (3,), (3,)]),
    "batch_norm_train_2d": (lambda x: ops.batch_norm(x, None, None, training=True), [(5, 3)]),
    "batch_norm_eval": (lambda x, w, b: ops.batch_norm(x, np.full(3, 0.2), np.full(3, 1.5), w, b),
                        [(2, 3, 2, 2), (3,), (3,)]),
    "dropout": (lambda x: ops.dropout(x, 0.4, True, np.random.default_rng(7)), [(4, 5)]),
    "conv2d_fused_relu6": (lambda x, w, b: ops.conv2d(x, w, b, padding=1, activation="relu6"),
                           [(2, 3, 5, 4), (4, 3, 3, 3), (4,)]),
    "conv_transpose2d_fused_relu": (lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=2, activation="relu"),
                                    [(1, 3, 4, 3), (3, 2, 3, 3), (2,)]),
    "upsample_nearest": (lambda x: ops.upsample(x, scale_factor=2), [(1, 2, 3, 4)]),
    "upsample_nearest_size": (lambda x: ops.upsample(x, size=(5, 7)), [(1, 2, 3, 4)]),
    "upsample_bilinear": (lambda x: ops.upsample(x, scale_factor=(2, 3), mode="bilinear"), [(1, 2, 3, 4)]),
    "upsample_bilinear_corners": (lambda x: ops.upsample(x, size=(5, 6), mode="bilinear", align_corners=True),
                                  [(1, 1, 3, 4)]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_gradients_by_central_differences(name):
    fn, shapes = OPS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    assert gradcheck(fn, [T(rng, *s) for s in shapes], n_directions=2)


CONVS = [
    ("conv1d", ops.conv1d, (2, 4, 11), (6, 2, 3), dict(stride=2, padding="same", dilation=2, groups=2)),
    ("conv2d", ops.conv2d, (2, 3, 9, 8), (4, 3, 3, 2), dict(stride=(2, 3), padding=((2, 1), (0, 1)))),
    ("conv2d_reflect", ops.conv2d, (1, 2, 6, 6), (3, 2, 3, 3), dict(padding=1, padding_mode="reflect")),
    ("conv_transpose1d", ops.conv_transpose1d, (2, 4, 5), (4, 3, 4), dict(stride=2, padding=1, groups=2)),
    ("conv_transpose2d", ops.conv_transpose2d, (1, 3, 4, 5), (3, 2, 3, 3),
     dict(stride=2, padding=1, output_padding=1, dilation=(1, 2))),
]


@pytest.mark.parametrize("name,op,xs,ws,kw", CONVS, ids=[c[0] for c in CONVS])
def test_conv_ops_satisfy_the_adjoint_identity(name, op, xs, ws, kw, rng):
    # y = C(w) x is linear in x and in w, so <y, v> = <x, dy/dx^T v> = <w, dy/dw^T v> exactly
    x, w = T(rng, *xs), T(rng, *ws)
    y = op(x, w, **kw)
    v = rng.standard_normal(y.shape)
    y.backward(v)
    inner = float((y.data * v).sum())
    np.testing.assert_allclose(float((x.data * x.grad).sum()), inner, rtol=1e-10)
    np.testing.assert_allclose(float((w.data * w.grad).sum()), inner, rtol=1e-10)


def test_conv_op_float32_forward_matches_functional(rng):
    from fastconv import functional as F
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = ops.conv2d(Tensor(x), Tensor(w, requires_grad=True), stride=2, padding="same")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, F.conv2d(x, w, stride=2, padding="same"))
    y.sum().backward()


def test_max_pool_gradient_goes_to_the_first_maximum_only():
    x = np.array([[5.0, 5.0, 1.0, 2.0],
                  [5.0, 0.0, 2.0, 2.0]])[None, None]
    t = Tensor(x, requires_grad=True)
    y = ops.max_pool2d(t, 2)
    np.testing.assert_array_equal(y.data[0, 0], [[5.0, 2.0]])
    y.backward(np.array([[[[10.0, 7.0]]]]))
    np.testing.assert_array_equal(t.grad[0, 0], [[10.0, 0.0, 0.0, 7.0],
                                                 [0.0, 0.0, 0.0, 0.0]])


def test_overlapping_max_windows_accumulate(rng):
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the centre is the maximum of all four overlapping 2x2 windows
    t = Tensor(x, requires_grad=True)
    ops.max_pool2d(t, 2, stride=1).sum().backward()
    assert t.grad[0, 0, 1, 1] == 4.0 and t.grad.sum() == 4.0


def _naive_pool(x, k, s, p, reduce, fill):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    ho, wo = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = reduce(xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]], axis=(2, 3))
    return out


@pytest.mark.parametrize("k,s,p", [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 1)), ((3, 3), (2, 2), (1, 0))])
def test_pool_forward_matches_a_naive_loop(k, s, p, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    np.testing.assert_allclose(P.max_pool2d(x, k, s, p)[0], _naive_pool(x, k, s, p, np.max, -np.inf))
    np.testing.assert_allclose(P.avg_pool2d(x, k, s, p), _naive_pool(x, k, s, p, np.mean, 0.0))


def test_pool_bad_arguments_name_the_problem():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="half the kernel"):
        P.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"larger than the input.*\(1, 1, 4, 4\)"):
        P.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match="4-D"):
        P.max_pool2d(np.zeros((4, 4), np.float32), 2)


def test_relu_gradient_at_zero_is_zero_and_sigmoid_is_stable():
    x = Tensor(np.array([-1.0, 0.0, 1.0]), requires_grad=True)
    ops.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])
    with np.errstate(over="raise"):
        s = ops.sigmoid(Tensor(np.array([-1000.0, 1000.0], np.float32)))
    np.testing.assert_array_equal(s.data, [0.0, 1.0])


def test_cross_entropy_value_and_bad_targets():
    logits = Tensor(np.log(np.array([[0.2, 0.8], [0.5, 0.5]])))
    np.testing.assert_allclose(ops.cross_entropy(logits, np.array([1, 0])).item(), -(np.log(0.8) + np.log(0.5)) / 2)
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 2\)"):
        ops.cross_entropy(logits, np.array([0, 2]))
    with pytest.raises(ValueError, match="integer class indices"):
        ops.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"input shape \(2, 2\) and target shape \(2,\)"):
        ops.mse_loss(logits, np.zeros(2))


def test_batch_norm_running_statistics_follow_pytorch_rule(rng):
    x = rng.standard_normal((6, 2, 3, 3)) * 3 + 1
    rm, rv = np.zeros(2), np.ones(2)
    y = ops.batch_norm(Tensor(x), rm, rv, training=True, momentum=0.1)
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1))
    np.testing.assert_allclose(y.data.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    ye = ops.batch_norm(Tensor(x), rm, rv, training=False)
    np.testing.assert_allclose(ye.data, (x - rm.reshape(1, 2, 1, 1)) / np.sqrt(rv.reshape(1, 2, 1, 1) + 1e-5))


def test_dropout_keeps_expectation_and_masks_the_gradient():
    x = Tensor(np.ones((200, 100)), requires_grad=True)
    y = ops.dropout(x, 0.25, True, np.random.default_rng(0))
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)
    assert ops.dropout(x, 0.25, training=False) is x


# ----------------------------------------------------------------------------- PyTorch as oracle
TORCH_CASES = {
    "max_pool2d": (lambda x: ops.max_pool2d(x, 3, 2, 1), lambda F, x: F.max_pool2d(x, 3, 2, 1)),
    "avg_pool2d": (lambda x: ops.avg_pool2d(x, 3, 2, 1), lambda F, x: F.avg_pool2d(x, 3, 2, 1)),
    "avg_pool2d_no_pad_count": (lambda x: ops.avg_pool2d(x, (3, 2), (2, 1), (1, 1), count_include_pad=False),
                                lambda F, x: F.avg_pool2d(x, (3, 2), (2, 1), (1, 1), count_include_pad=False)),
    "adaptive_avg_pool2d": (lambda x: ops.adaptive_avg_pool2d(x, (3, 4)), lambda F, x: F.adaptive_avg_pool2d(x, (3, 4))),
    "upsample_nearest": (lambda x: ops.upsample(x, scale_factor=2), lambda F, x: F.interpolate(x, scale_factor=2)),
    "upsample_nearest_size": (lambda x: ops.upsample(x, size=(11, 5)), lambda F, x: F.interpolate(x, size=(11, 5))),
    "upsample_bilinear": (lambda x: ops.upsample(x, scale_factor=2, mode="bilinear"),
                          lambda F, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)),
    "upsample_bilinear_size": (lambda x: ops.upsample(x, size=(9, 4), mode="bilinear"),
                               lambda F, x: F.interpolate(x, size=(9, 4), mode="bilinear", align_corners=False)),
    "upsample_bilinear_corners": (lambda x: ops.upsample(x, size=(9, 13), mode="bilinear", align_corners=True),
                                  lambda F, x: F.interpolate(x, size=(9, 13), mode="bilinear", align_corners=True)),
    "softmax": (lambda x: ops.softmax(x, axis=1), lambda F, x: F.softmax(x, dim=1)),
    "log_softmax": (lambda x: ops.log_softmax(x, axis=1), lambda F, x: F.log_softmax(x, dim=1)),
    "relu6": (lambda x: ops.relu6(x * 4), lambda F, x: F.relu6(x * 4)),
    "leaky_relu": (lambda x: ops.leaky_relu(x, 0.1), lambda F, x: F.leaky_relu(x, 0.1)),
    "batch_norm": (lambda x: ops.batch_norm(x, None, None, training=True),
                   lambda F, x: F.batch_norm(x, None, None, training=True)),
    "conv2d_circular": (lambda x: ops.conv2d(x, np.linspace(-1, 1, 54).reshape(2, 3, 3, 3), padding=1,
                                             padding_mode="circular"),
                        lambda F, x: F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"),
                                              __import__("torch").linspace(-1, 1, 54, dtype=x.dtype).reshape(2, 3, 3, 3))),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_forward_and_backward_match_pytorch(name, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = TORCH_CASES[name]
    x = rng.standard_normal((2, 3, 6, 7))
    t = Tensor(x, requires_grad=True)
    y = ours(t)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(torch.nn.functional, tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    v = rng.standard_normal(y.shape)
    y.backward(v)
    ty.backward(torch.tensor(v))
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_cross_entropy_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    logits, target = rng.standard_normal((6, 10)), rng.integers(0, 10, 6)
    t = Tensor(logits, requires_grad=True)
    loss = ops.cross_entropy(t, target)
    loss.backward()
    tl = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tl, torch.tensor(target))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(t.grad, tl.grad.numpy(), rtol=1e-10, atol=1e-14)
