"""Layers: PyTorch names and numbers, initialisation, state I/O, hooks, modes, errors naming the layer."""
import numpy as np
import pytest

from fastconv import nn, ops
from fastconv.autograd import Tensor, gradcheck


def _net():
    """One of every layer, nested, as a PyTorch user would write it."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, (3, 2), stride=2, padding=(1, 0), groups=2),
        nn.ReLU6(),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.0),
        nn.Linear(16, 5),
    )


def _torch_net(torch):
    tn = torch.nn
    return tn.Sequential(
        tn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), tn.BatchNorm2d(8), tn.ReLU(), tn.MaxPool2d(2),
        tn.Conv2d(8, 8, (3, 2), stride=2, padding=(1, 0), groups=2), tn.ReLU6(),
        tn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
        tn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        tn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        tn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False), tn.AdaptiveAvgPool2d(2), tn.Flatten(),
        tn.Dropout(0.0), tn.Linear(16, 5)).double()


@pytest.mark.parametrize("training", [True, False])
def test_network_matches_pytorch_forward_and_backward(training, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = _torch_net(torch)
    with torch.no_grad():  # non-trivial running statistics for eval mode
        theirs[1].running_mean.uniform_(-0.5, 0.5)
        theirs[1].running_var.uniform_(0.5, 2.0)
    ours = _net().to(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.train(training)
    theirs.train(training)

    x = rng.standard_normal((4, 3, 12, 10))
    target = np.array([0, 3, 4, 1])
    xt = Tensor(x, requires_grad=True)
    loss = ops.cross_entropy(ours(xt), target)
    loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(theirs(tx), torch.tensor(target))
    tloss.backward()

    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-8, atol=1e-12)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)
    tstate = theirs.state_dict()
    for name, b in ours.named_buffers():  # running statistics updated alike
        np.testing.assert_allclose(b, tstate[name].numpy(), rtol=1e-12, err_msg=name)


def test_conv1d_and_convtranspose1d_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Conv1d(2, 4, 3, stride=2, padding=1, padding_mode="replicate"), nn.Tanh(),
                         nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1), nn.Sigmoid()).to(np.float64)
    theirs = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, stride=2, padding=1, padding_mode="replicate"),
                                 torch.nn.Tanh(), torch.nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1),
                                 torch.nn.Sigmoid()).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 2, 9))
    y = ours(Tensor(x))
    np.testing.assert_allclose(y.data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10)


def test_state_dict_names_follow_pytorch():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 1, bias=False))
            self.bn = nn.BatchNorm2d(2)
            self.head = nn.Linear(2, 3)

        def forward(self, x):
            return self.head(self.bn(self.features(x)).mean(axis=(2, 3)))

    names = list(Net().state_dict())
    assert names == ["features.0.weight", "features.0.bias", "features.2.weight", "bn.weight", "bn.bias",
                     "bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "head.weight", "head.bias"]
    assert [n for n, _ in Net().named_parameters()] == [n for n in names if "running" not in n and "num_" not in n]


def test_init_follows_pytorch_defaults():
    nn.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)                   # fan_in = 16 * 9
    tconv = nn.ConvTranspose2d(32, 8, 4)          # PyTorch's fan_in for (C_in, C_out, k, k) is C_out * k * k
    lin = nn.Linear(400, 10)
    for w, fan_in in ((conv.weight, 144), (tconv.weight, 8 * 16), (lin.weight, 400)):
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(w.data).max() <= bound
        assert np.abs(w.data).max() > 0.95 * bound
        np.testing.assert_allclose(w.data.std(), bound / np.sqrt(3), rtol=0.1)  # uniform's std
    assert np.abs(conv.bias.data).max() <= 1 / 12 and conv.weight.dtype == np.float32
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.running_var, 1)
    nn.manual_seed(0)
    np.testing.assert_array_equal(nn.Conv2d(16, 32, 3).weight.data, conv.weight.data)


def test_save_and_load_npz_roundtrip(tmp_path, rng):
    net = _net()
    net.train()
    net(Tensor(rng.standard_normal((2, 3, 12, 10)).astype(np.float32)))  # moves the running stats
    net.eval()
    x = Tensor(rng.standard_normal((2, 3, 12, 10)).astype(np.float32))
    path = tmp_path / "w.npz"
    net.save(path)
    other = _net().load(path).eval()
    np.testing.assert_array_equal(other(x).data, net(x).data)
    assert int(other[1].num_batches_tracked) == 1


def test_load_state_dict_reports_missing_unexpected_and_shapes():
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(KeyError, match=r"missing keys \['0.bias'\].*unexpected keys \['0.beta'\]"):
        net.load_state_dict({"0.weight": np.zeros((2, 3)), "0.beta": np.zeros(2)})
    with pytest.raises(ValueError, match=r"0.weight has shape \(3, 3\) in the state but \(2, 3\) in the model"):
        net.load_state_dict({"0.weight": np.zeros((3, 3)), "0.bias": np.zeros(2)})
    net.load_state_dict({"0.weight": np.ones((2, 3))}, strict=False)
    np.testing.assert_array_equal(net[0].weight.data, 1)
    assert net[0].weight.dtype == np.float32


def test_state_dict_returns_copies():
    net = nn.Linear(2, 2)
    sd = net.state_dict()
    sd["weight"][:] = 123
    assert not np.any(net.weight.data == 123)


def test_hooks_read_and_replace_activations(rng):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    x = Tensor(rng.standard_normal((1, 1, 5, 5)).astype(np.float32), requires_grad=True)
    with nn.capture(net, ["0", "1"]) as acts:
        out = net(x)
    np.testing.assert_array_equal(acts["1"].data, np.maximum(acts["0"].data, 0))
    acts["1"][0, 1].sum().backward()  # an activation is differentiable w.r.t. the input
    assert x.grad is not None and x.grad.shape == x.shape
    assert not net[0]._forward_hooks  # removed on exit

    handle = net[1].register_forward_hook(lambda m, inp, o: o * 0)
    np.testing.assert_array_equal(net(x).data, np.broadcast_to(net[3].bias.data, (1, 2)))
    handle.remove()
    np.testing.assert_array_equal(net(x).data, out.data)
    with pytest.raises(KeyError, match="no sub-module named '7'"):
        with nn.capture(net, ["7"]):
            pass


def test_train_eval_switch_batch_norm_and_dropout(rng):
    net = nn.Sequential(nn.BatchNorm2d(2), nn.Dropout(0.5))
    assert net.training and net[1].training
    net.eval()
    assert not net.training and not net[0].training and not net[1].training
    x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(net(Tensor(x)).data, x / np.sqrt(1 + 1e-5), rtol=1e-6)  # fresh running stats
    net.train()
    y = net(Tensor(x)).data
    assert (y == 0).mean() > 0.3  # dropout active
    assert not np.allclose(net[0].running_mean, 0)


def test_zero_grad_and_parameters(rng):
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    assert len(net.parameters()) == 4
    net(Tensor(rng.standard_normal((2, 3)).astype(np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("layer,shape", [
    (nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1, padding_mode="circular"), (2, 2, 5, 4)),
    (nn.Conv2d(2, 2, 3, padding="same", groups=2), (1, 2, 4, 5)),
    (nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1), (1, 2, 3, 3)),
    (nn.BatchNorm2d(2), (4, 2, 2, 3)),
    (nn.BatchNorm1d(3), (5, 3)),
    (nn.Linear(4, 3), (2, 4)),
    (nn.Upsample(size=(5, 4), mode="bilinear"), (1, 2, 3, 3)),
])
def test_layer_gradients_by_central_differences(layer, shape, rng):
    layer.to(np.float64)
    x = Tensor(rng.standard_normal(shape), requires_grad=True)
    assert gradcheck(lambda x, *params: layer(x), [x] + layer.parameters())


@pytest.mark.parametrize("layer,shape,pattern", [
    (nn.Linear(512, 10), (8, 256), r"Linear\(in_features=512, out_features=10.*input has shape \(8, 256\)"),
    (nn.Conv2d(16, 32, 3), (8, 3, 32, 32), r"Conv2d\(16, 32.*input has shape \(8, 3, 32, 32\), expected \(N, 16, H, W\)"),
    (nn.Conv2d(1, 2, 5), (1, 1, 3, 3), r"Conv2d\(1, 2, kernel_size=\(5, 5\).*larger than the padded input"),
    (nn.Conv1d(2, 2, 3), (2, 2, 4, 4), r"Conv1d.*input has shape \(2, 2, 4, 4\), expected \(N, 2, L\)"),
    (nn.BatchNorm2d(4), (2, 3, 5, 5), r"BatchNorm2d\(4.*input has shape \(2, 3, 5, 5\)"),
    (nn.MaxPool2d(4), (1, 1, 3, 3), r"MaxPool2d\(kernel_size=4.*larger than the input"),
])
def test_shape_errors_name_the_layer_and_shapes(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer(Tensor(np.zeros(shape, np.float32)))


def test_sequential_error_names_the_failing_layer():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(100, 10))
    with pytest.raises(ValueError, match=r"layer '3' of Sequential: Linear\(in_features=100.*\(2, 144\)"):
        net(Tensor(np.zeros((2, 1, 8, 8), np.float32)))


def test_repr_is_nested():
    text = repr(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Sequential(nn.ReLU())))
    assert "(0): Conv2d(1, 2, kernel_size=(3, 3), stride=1, padding=1)" in text
    assert "(1): Sequential(\n    (0): ReLU()" in text
