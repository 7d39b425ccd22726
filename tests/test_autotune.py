"""The autotuner of algo='auto' (fastconv.autotune): what it times, what it remembers, and that
tuned calls compute the same results as untuned ones."""
import numpy as np
import pytest

import fastconv
from fastconv import autotune
from fastconv.backends import cpu
from oracle import rel_err


@pytest.fixture
def tuner():
    autotune.clear()
    with autotune.enabled():
        yield autotune
    autotune.clear()


@pytest.fixture
def calls(monkeypatch):
    """Every (op, algo) the CPU backend is asked to run, in order."""
    seen = []
    for op in ("conv_forward", "conv_grad_input", "conv_grad_weight"):
        real = getattr(cpu, op)

        def spy(*args, _real=real, _op=op, **kw):
            seen.append((_op, args[3]))
            return _real(*args, **kw)
        monkeypatch.setattr(cpu, op, spy)
    return seen


def test_off_by_default_follows_the_rule(calls):
    assert not autotune.is_enabled()
    x, w = np.ones((1, 4, 9, 9)), np.ones((5, 4, 3, 3))
    fastconv.conv2d(x, w, padding=1)
    assert calls == [("conv_forward", cpu.choose_algo(fastconv.conv_geometry(x.shape, w.shape, padding=1)))]
    assert autotune.choices() == {}


def test_off_the_rule_is_asked_per_operation(monkeypatch):
    """Each pass asks the backend's rule with its own op (the GPU's differs for the weight gradient)."""
    asked = []
    real = cpu.choose_algo
    monkeypatch.setattr(cpu, "choose_algo", lambda geom, op="forward": asked.append(op) or real(geom, op))
    x, w = np.ones((1, 4, 9, 9)), np.ones((5, 4, 3, 3))
    gy = np.ones((1, 5, 9, 9))
    fastconv.conv2d(x, w, padding=1)
    fastconv.grad.conv2d_input(x.shape, w, gy, padding=1)
    fastconv.grad.conv2d_weight(x, w.shape, gy, padding=1)
    assert asked == ["forward", "grad_input", "grad_weight"]


def test_times_every_covering_algorithm_once_then_remembers(tuner, calls, rng, monkeypatch):
    # calls of tens of microseconds: one preemption can make a call GIVE_UP times the best and
    # cut its repeats short (seen once in CI); giving up has its own test below
    monkeypatch.setattr(autotune, "GIVE_UP", float("inf"))
    x = rng.standard_normal((2, 4, 10, 10))
    w = rng.standard_normal((6, 4, 3, 3))
    y = fastconv.conv2d(x, w, padding=1, activation="relu")
    candidates = cpu.algos_for(fastconv.conv_geometry(x.shape, w.shape, padding=1), "forward")
    assert candidates == ["direct", "im2col", "winograd", "fft"]
    timed = [a for _, a in calls[:-1]]
    assert sorted(set(timed)) == sorted(candidates)
    assert all(timed.count(a) == 1 + autotune.REPEATS for a in candidates)   # nothing was given up on
    (problem, choice), = tuner.choices().items()
    assert problem.op == "forward" and problem.dtype == "float64" and problem.context[0] == "threads"
    assert calls[-1] == ("conv_forward", choice.algo)                       # the answer: the winner
    assert choice.algo == min(choice.times, key=choice.times.get)
    assert rel_err(y, fastconv.conv2d(x, w, padding=1, activation="relu", algo="direct")) < 1e-12
    calls.clear()
    fastconv.conv2d(x, w, padding=1)
    assert calls == [("conv_forward", choice.algo)]                          # remembered: no timing
    fastconv.conv2d(x[:1], w, padding=1)                                     # a new shape: tuned again
    assert len(calls) > 2 and len(tuner.choices()) == 2


def test_each_gradient_is_its_own_problem(tuner, calls, rng):
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 4, 3, 3))
    gy = rng.standard_normal((2, 6, 9, 8))
    gx = fastconv.grad.conv2d_input(x.shape, w, gy, padding=1)
    gw = fastconv.grad.conv2d_weight(x, w.shape, gy, padding=1)
    ops = {p.op for p in tuner.choices()}
    assert ops == {"grad_input", "grad_weight"}
    assert "winograd" not in {a for op, a in calls if op == "conv_grad_weight"}   # it is im2col's
    assert rel_err(gx, fastconv.grad.conv2d_input(x.shape, w, gy, padding=1, algo="direct")) < 1e-12
    assert rel_err(gw, fastconv.grad.conv2d_weight(x, w.shape, gy, padding=1, algo="direct")) < 1e-12
    t = fastconv.conv_transpose2d(gy, w, padding=1)                         # the same primitive
    assert rel_err(t, gx) < 1e-12 and len(tuner.choices()) == 2


def test_a_named_algorithm_is_never_tuned(tuner, calls):
    fastconv.conv2d(np.ones((1, 2, 6, 6)), np.ones((3, 2, 3, 3)), algo="im2col")
    assert calls == [("conv_forward", "im2col")] and tuner.choices() == {}


def test_hopeless_candidates_are_not_repeated(tuner, monkeypatch):
    """After its untimed call, a candidate GIVE_UP times slower than the best is timed once."""
    now, ran = [0.0], []
    cost = {"im2col": 1.0, "fft": 2.0, "direct": 50.0}
    monkeypatch.setattr(autotune.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(autotune, "REPEATS", 3)

    def run(algo):
        ran.append(algo)
        now[0] += cost[algo]
    monkeypatch.setattr(cpu, "algos_for", lambda geom, op: ["im2col", "direct", "fft"])
    g = fastconv.conv_geometry((1, 1, 4, 4), (1, 1, 3, 3))
    assert autotune.pick(cpu, "forward", g, np.dtype("float64"), run) == "im2col"
    assert ran == ["im2col"] * 4 + ["direct"] * 2 + ["fft"] * 4
    (choice,) = tuner.choices().values()
    assert choice.times == {"im2col": 1.0, "direct": 50.0, "fft": 2.0}


def test_enabled_restores_the_previous_setting():
    with autotune.enabled():
        assert autotune.is_enabled()
        with autotune.enabled(False):
            assert not autotune.is_enabled()
        assert autotune.is_enabled()
    assert not autotune.is_enabled()
