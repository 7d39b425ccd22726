"""Optimizers and schedules: closed forms, and torch.optim as the oracle when installed."""
import math

import numpy as np
import pytest

from fastconv import optim
from fastconv.autograd import Tensor


def _quadratic_run(make_opt, steps, w0, a):
    """Minimise sum(a * w^2 + w) with our optimizer; return the trajectory of w."""
    w = Tensor(w0.copy(), requires_grad=True)
    opt = make_opt([w])
    path = []
    for _ in range(steps):
        opt.zero_grad()
        (a * w * w + w).sum().backward()
        opt.step()
        path.append(w.data.copy())
    return np.array(path)


def _torch_run(torch, make_opt, steps, w0, a):
    w = torch.tensor(w0.copy(), requires_grad=True)
    opt = make_opt([w])
    at = torch.tensor(a)
    path = []
    for _ in range(steps):
        opt.zero_grad()
        (at * w * w + w).sum().backward()
        opt.step()
        path.append(w.detach().numpy().copy())
    return np.array(path)


CONFIGS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("adam", dict(lr=0.1)),
    ("adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
]


@pytest.mark.parametrize("kind,kw", CONFIGS)
def test_optimizers_match_torch_optim(kind, kw):
    torch = pytest.importorskip("torch")
    ours = {"sgd": optim.SGD, "adam": optim.Adam}[kind]
    theirs = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[kind]
    rng = np.random.default_rng(0)
    w0, a = rng.standard_normal(5), rng.uniform(0.5, 2, 5)
    np.testing.assert_allclose(_quadratic_run(lambda p: ours(p, **kw), 20, w0, a),
                               _torch_run(torch, lambda p: theirs(p, **kw), 20, w0, a), rtol=1e-10, atol=1e-12)


def test_sgd_momentum_closed_form():
    w = Tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.5)
    for _ in range(2):
        opt.zero_grad()
        (w * 3).sum().backward()  # constant gradient 3
        opt.step()
    # buf1 = 3, w1 = 1 - 0.3 = 0.7; buf2 = 0.5*3 + 3 = 4.5, w2 = 0.7 - 0.45 = 0.25
    np.testing.assert_allclose(w.data, [0.25])


def test_adam_first_step_is_lr_times_sign():
    w = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    opt = optim.Adam([w], lr=0.01)
    (w * np.array([3.0, -0.001, 40.0])).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.data, [0.99, -1.99, 0.49], rtol=1e-5)


def test_step_skips_parameters_without_gradient_and_keeps_dtype():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    np.testing.assert_array_equal(b.data, 1)
    assert a.data.dtype == np.float32 and np.all(a.data < 1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)


def test_schedules():
    w = Tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.5)
    assert [step.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt.lr = 1.0
    cos = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = [cos.step() for _ in range(5)]
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in (1, 2, 3, 4, 4)]
    np.testing.assert_allclose(lrs, expected)
    assert opt.lr == pytest.approx(0.1)


def test_cosine_schedule_matches_torch():
    torch = pytest.importorskip("torch")
    tw = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.3)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=7, eta_min=0.01)
    opt = optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.3)
    sched = optim.CosineAnnealingLR(opt, T_max=7, eta_min=0.01)
    for _ in range(7):
        topt.step()
        tsched.step()
        sched.step()
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
