"""Receptive fields: known values, and the support of an output unit's input gradient."""
import numpy as np
import pytest

from fastconv import nn
from fastconv.autograd import Tensor
from fastconv.receptive import receptive_field


def test_alexnet_fields_match_the_known_values():
    # AlexNet's conv/pool stack: field 195 pixels, jump 32 at pool5 (Araujo et al., Table 1)
    net = nn.Sequential(nn.Conv2d(3, 1, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
                        nn.Conv2d(1, 1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                        nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1),
                        nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(3, 2))
    f = receptive_field(net, (1, 3, 227, 227))
    assert [x.size[0] for x in f] == [11, 11, 19, 51, 51, 67, 99, 131, 163, 195]
    assert [x.jump[0] for x in f] == [4, 4, 8, 8, 8, 16, 16, 16, 16, 32]
    # paddings 2 (at jump 8) and 3 x 1 (at jump 16) move the first field 64 pixels out: centre -64 + 97
    assert f[-1].start == (33.0, 33.0) and f[-1].output_shape == (1, 1, 6, 6)


def test_non_square_kernels_strides_and_same_padding_per_axis():
    net = nn.Sequential(nn.Conv2d(1, 1, (3, 5), stride=(1, 2), padding="same"), nn.AvgPool2d((2, 1)),
                        nn.Conv2d(1, 1, (1, 3), dilation=(1, 3)))
    f = receptive_field(net, (1, 1, 10, 15))
    # 'same' on 15 columns with kernel 5, stride 2 pads (2, 2); on 10 rows with kernel 3 pads (1, 1)
    assert f[0].size == (3, 5) and f[0].jump == (1, 2) and f[0].start == (0.0, 0.0)
    assert f[1].size == (4, 5) and f[1].jump == (2, 2) and f[1].start == (0.5, 0.0)
    assert f[2].size == (4, 5 + 6 * 2) and f[2].jump == (2, 2) and f[2].start == (0.5, 6.0)
    assert f[2].window((1, 0)) == ((1, 4), (-2, 14))


def _positive(net):
    net.to(np.float64)
    rng = np.random.default_rng(0)
    for p in net.parameters():  # positive weights: no two paths cancel, so support == reach
        p.data = rng.uniform(0.1, 1.0, p.shape)
    return net


def _support(prefix, shape, unit):
    x = Tensor(np.random.default_rng(1).uniform(0.5, 1.0, shape), requires_grad=True)
    y = prefix(x)
    y[(0, 0) + tuple(unit)].backward()
    nz = np.nonzero(np.abs(x.grad[0]).sum(axis=0))
    return [(int(ax.min()), int(ax.max())) for ax in nz]


MODELS = {
    "conv_pool_dilation": (lambda: nn.Sequential(
        nn.Conv2d(1, 2, (3, 5), padding=(1, 2)), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(2, 2, 3, stride=(1, 2)), nn.Conv2d(2, 1, (2, 3), dilation=(2, 1), padding="same"),
        nn.AvgPool2d(3, stride=2, padding=1)), (1, 1, 26, 34)),
    "strided_same": (lambda: nn.Sequential(
        nn.Conv2d(1, 2, 4, stride=2, padding="same"), nn.BatchNorm2d(2), nn.Conv2d(2, 2, (5, 2), stride=(3, 1)),
        nn.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 0))), (1, 1, 30, 21)),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(1, 2, 5, stride=2, padding=2), nn.Conv1d(2, 1, 3, dilation=3)),
               (1, 1, 40)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradient_support_fills_the_reported_field(name):
    make, shape = MODELS[name]
    net = _positive(make())
    net.eval()
    fields = receptive_field(net, shape)
    layers = list(net)
    for li, f in enumerate(fields):
        prefix = nn.Sequential(*layers[:li + 1])
        out = f.output_shape[2:]
        units = {tuple(0 for _ in out), tuple(n - 1 for n in out), tuple(n // 2 for n in out)}
        for unit in units:
            support = _support(prefix, shape, unit)
            window = f.window(unit)
            for ax, ((lo, hi), (wlo, whi)) in enumerate(zip(support, window)):
                n = shape[2 + ax]
                assert wlo <= lo and hi <= whi, (li, unit, support, window)  # inside the field
                if wlo >= 0 and whi < n:  # a field wholly in the image is touched at both edges
                    assert (lo, hi) == (wlo, whi), (li, unit, support, window)
                else:
                    assert lo == max(wlo, 0) or hi == min(whi, n - 1), (li, unit, support, window)


def test_max_pool_gradient_stays_inside_the_field():
    net = _positive(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, 2, 1), nn.Conv2d(2, 1, 2)))
    shape = (1, 1, 15, 15)
    f = receptive_field(net, shape)[-1]
    for unit in [(0, 0), (3, 2), (5, 5)]:
        for (lo, hi), (wlo, whi) in zip(_support(net, shape, unit), f.window(unit)):
            assert wlo <= lo and hi <= whi


def test_linear_after_flatten_sees_the_whole_map():
    net = _positive(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 4)))
    shape = (1, 1, 8, 8)
    f = receptive_field(net, shape)
    assert f[2].size == f[1].size and f[2].layer == "Flatten"
    assert f[3].size == (8, 8) and f[3].window((0, 0)) == ((0, 7), (0, 7))
    x = Tensor(np.ones(shape), requires_grad=True)
    net(x)[0, 1].backward()
    assert np.all(x.grad != 0)


def test_global_pooling_and_printing():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AdaptiveAvgPool2d(1))
    f = receptive_field(net, (1, 1, 6, 6))
    assert f[1].size == (8, 8) and f[1].start == (2.5, 2.5)
    text = str(f)
    assert "AdaptiveAvgPool2d" in text and "(8, 8)" in text


def test_unsupported_layers_are_named():
    with pytest.raises(NotImplementedError, match=r"layer 1 \(Upsample\)"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2)), (1, 1, 8, 8))
    with pytest.raises(ValueError, match="unequal sizes"):
        receptive_field(nn.Sequential(nn.AdaptiveAvgPool2d(3)), (1, 1, 8, 8))

    class Odd(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"layer 0 \(Odd\)"):
        receptive_field(nn.Sequential(Odd()), (1, 1, 4, 4))
