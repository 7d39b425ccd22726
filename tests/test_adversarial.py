"""Attacks: the budget holds exactly, inputs stay untouched, targeted PGD and EOT work on the digits CNN."""
import warnings

import numpy as np
import pytest

from fastconv import nn, ops
from fastconv.autograd import Tensor
from fastconv.interpret import AttackResult, eot_evaluate, eot_pgd, eps_from_fraction, fgsm, pgd
from fastconv.interpret import transforms as T


def tiny_net(dtype=np.float32, seed=0):
    nn.manual_seed(seed)
    # BatchNorm1d: in training mode items would interact; the attacks must switch to eval mode
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, dtype=dtype), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, stride=2, dtype=dtype), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 6, dtype=dtype), nn.BatchNorm1d(6, dtype=dtype))


@pytest.fixture
def pixels(rng):
    x = rng.uniform(0, 255, (3, 3, 8, 8)).astype(np.float32)
    x[0, 0, :2] = 0.0      # values on the bounds: the box must clip there too
    x[1, 1, -2:] = 255.0
    x[2] = np.float32(100.30651)  # awkward decimals: x - eps rounds in float32
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [8.0, 0.3, 2.5 / 3])
def test_pgd_respects_the_budget_exactly(pixels, dtype, eps):
    model, x = tiny_net(dtype), pixels.astype(dtype)
    for res in (pgd(model, x, eps=eps, steps=6, step_size=eps), pgd(model, x, 2, eps=eps, steps=6),
                fgsm(model, x, eps=eps), fgsm(model, x, [0, 1, 2], eps=eps)):
        d = res.x_adv.astype(np.float64) - x.astype(np.float64)
        assert np.abs(d).max() <= eps                    # exactly, in float64, no tolerance
        assert res.x_adv.min() >= 0 and res.x_adv.max() <= 255 and res.x_adv.dtype == dtype
        np.testing.assert_array_equal(res.linf, np.abs(d).reshape(3, -1).max(axis=1))
        np.testing.assert_allclose(res.l2, np.sqrt((d ** 2).reshape(3, -1).sum(axis=1)))
    # with a step as large as eps the attack saturates the budget on most values
    assert np.isclose(res.linf, eps, rtol=0, atol=1e-4).all()   # float32 spacing near 255 is 1.5e-5


def test_caller_input_flags_and_model_state_untouched(pixels):
    model = tiny_net().train()
    t = Tensor(pixels.copy(), requires_grad=True)
    grad = np.ones_like(pixels)
    t.grad = grad
    arr = pixels.copy()
    tr = T.compose(T.translate(1), T.gaussian_noise(1))
    for call in (lambda a: pgd(model, a, 1, eps=4, steps=2), lambda a: fgsm(model, a, eps=4),
                 lambda a: eot_pgd(model, a, 1, eps=4, steps=2, transforms=tr, samples=2),
                 lambda a: eot_evaluate(model, a, 1, tr, n=3)):
        call(t)
        call(arr)
        np.testing.assert_array_equal(t.data, pixels)
        np.testing.assert_array_equal(arr, pixels)
        assert t.requires_grad and t.grad is grad and t.is_leaf
        assert all(m.training for m in model.modules())
        assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_fgsm_is_one_signed_step(pixels):
    model = tiny_net(np.float64)
    x = pixels.astype(np.float64)
    model.eval()
    xt = Tensor(x, requires_grad=True)
    label = model(Tensor(x)).data.argmax(axis=1)
    ops.cross_entropy(model(xt), label, reduction="sum").backward()
    ref = np.clip(x + 3.0 * np.sign(xt.grad), 0, 255)
    np.testing.assert_allclose(fgsm(model, x, eps=3).x_adv, ref)
    np.testing.assert_allclose(fgsm(model, x, eps=3 / 255, eps_unit="fraction").x_adv, ref)


def test_eps_units():
    assert eps_from_fraction(8 / 255) == pytest.approx(8.0)
    assert eps_from_fraction(0.1, (-1, 1)) == pytest.approx(0.2)
    model, x = tiny_net(), np.full((1, 3, 8, 8), 0.5, np.float32)
    a = pgd(model, x, 1, eps=0.1, steps=3, bounds=(0, 1))
    b = pgd(model, x, 1, eps=0.05, steps=3, bounds=(-1, 1), eps_unit="fraction")
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    assert a.eps == b.eps == pytest.approx(0.1)


def test_bad_arguments(pixels):
    model = tiny_net()
    with pytest.raises(TypeError):
        pgd(model, pixels, 1)                                   # eps is required, keyword-only
    with pytest.raises(ValueError, match=r"outside bounds \(0, 1\)"):
        pgd(model, pixels, 1, eps=0.1, bounds=(0, 1))
    with pytest.raises(ValueError, match="eps_unit"):
        pgd(model, pixels, 1, eps=8, eps_unit="percent")
    with pytest.raises(ValueError, match="eps must be"):
        pgd(model, pixels, 1, eps=-1)
    with pytest.raises(ValueError, match="not both"):
        pgd(model, pixels, 1, eps=8, label=2)
    with pytest.raises(ValueError, match="out of range for a model with 6 classes"):
        pgd(model, pixels, 6, eps=8, steps=1)
    with pytest.raises(ValueError, match="transforms="):
        eot_pgd(model, pixels, 1, eps=8)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\)"):
        fgsm(model, pixels[0, 0], eps=8)
    with pytest.warns(UserWarning, match="0..1 image given to a pixel model"):
        fgsm(model, pixels / 255, eps=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fgsm(model, pixels / 255, eps=0.1, bounds=(0, 1))


def test_result_report_and_unbatched_input(pixels):
    res = pgd(tiny_net(), pixels[0], 3, eps=8, steps=3)
    assert isinstance(res, AttackResult) and res.x_adv.shape == (3, 8, 8)
    assert res.history.shape == (4, 1) and res.steps == 3
    text = str(res)
    assert "PGD (targeted -> 3)" in text and "eps 8" in text and "bounds (0, 255)" in text and "success" in text


# ----------------------------------------------------------------------------- the digits CNN
@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from fastconv.data import load_digits
    from fastconv.models.digits import train_digits
    model, hist = train_digits(epochs=6, seed=0, progress=False)   # ~5 s, about 97% held-out accuracy
    assert hist["test_acc"][-1] > 0.9
    d = load_digits(0)
    x, y = d.x_test[:20], d.y_test[:20]
    return model, x, y, (y + 1) % 10          # targets: the next digit


def test_targeted_pgd_succeeds_on_digits(digits):
    model, x, y, target = digits
    res = pgd(model, x, target, eps=0.3, steps=20, bounds=(0, 1))
    assert res.success_rate >= 0.8
    assert np.all(res.linf <= 0.3) and res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert np.mean(res.history[-1] > res.history[0]) >= 0.95     # log P(target) went up
    np.testing.assert_array_equal(res.success, res.predicted == target)
    small = pgd(model, x, target, eps=0.02, steps=20, bounds=(0, 1))
    assert small.success_rate < res.success_rate                  # the budget binds


def test_eot_is_more_robust_than_pgd_under_transformations(digits):
    model, x, y, target = digits
    dist = T.compose(T.random_affine(8, (0.95, 1.05), 0.5), T.gaussian_noise(0.05))
    plain = pgd(model, x, target, eps=0.3, steps=20, bounds=(0, 1))
    robust = eot_pgd(model, x, target, eps=0.3, steps=20, bounds=(0, 1), transforms=dist, samples=8, batch_size=64)
    assert np.all(robust.linf <= 0.3)
    rate_pgd = eot_evaluate(model, plain, target, dist, n=50, seed=1)
    rate_eot = eot_evaluate(model, robust, target, dist, n=50, seed=1)
    assert rate_eot > rate_pgd + 0.03, (rate_pgd, rate_eot)
    # deterministic given the seed: the same transformations for both examples and on a rerun
    assert eot_evaluate(model, plain, target, dist, n=50, seed=1) == rate_pgd
    per = eot_evaluate(model, robust.x_adv, target, dist, n=50, seed=1, per_item=True)
    assert per.shape == (20,) and per.mean() == pytest.approx(rate_eot)
    clean = eot_evaluate(model, x, target, dist, n=20, seed=1)
    assert clean < 0.05                                            # the targets are not what x shows
