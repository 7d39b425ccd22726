"""Adversarial examples under an L-infinity budget: FGSM, PGD, and PGD with Expectation Over Transformation.

The targeted attack is the lecture's problem

    log P(y_target | x_adv) -> max    subject to    ||x - x_adv||_inf <= eps,  x_adv within bounds,

solved by projected gradient ascent with signed steps (Madry et al.). The untargeted attack
instead maximizes the cross-entropy of the true (or predicted) class. EOT (Athalye et al.)
maximizes the EXPECTED log-probability over a distribution of transformations t (rotation,
zoom, shift, brightness, noise: :mod:`fastconv.interpret.transforms`), estimated at each step
by the mean over ``samples`` random draws, batched into one forward/backward pass, so the
example survives those transformations ("lemur -> burrito" from any angle).

Units (the most common trouble with attack libraries): ``eps`` and ``step_size`` are in the
SAME UNITS AS x AND ``bounds`` — pixel levels for a 0..255 image (``bounds=(0, 255)``, the
default, what ``efficientnet_lite0()`` takes), or fractions for a 0..1 image
(``bounds=(0, 1)``, the digits CNN). ``eps=8`` with bounds (0, 255) is the classic 8/255
budget. Pass ``eps_unit='fraction'`` to give eps as a fraction of the range (``eps=8/255``),
or convert with :func:`eps_from_fraction`. ``eps`` is keyword-only and has no default, so a
call always states it. An x outside ``bounds`` raises a ValueError; an x that lies in [0, 1]
while the bounds are (0, 255) warns (a 0..1 image given to a pixel model).

Every attack leaves the caller's x (array or Tensor, with its flags) untouched, runs the model
in eval mode with frozen parameters (restoring both afterwards), and returns an
:class:`AttackResult` whose ``x_adv`` is checked against the budget EXACTLY: it is projected
onto the eps-ball and the bounds after every step, rounding is corrected to the last ulp, and
a final check raises if |x_adv - x| > eps or a value leaves the bounds.

Example:
    >>> from fastconv.models import efficientnet_lite0, imagenet_pixels, sample_image
    >>> model = efficientnet_lite0().fused()
    >>> x = imagenet_pixels(sample_image("chelsea"))                       # (3, 224, 224), 0..255
    >>> res = pgd(model, x, "burrito", eps=8, steps=20)                    # doctest: +SKIP
    >>> print(res)                                                         # doctest: +SKIP

References: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
ICLR 2015 (FGSM); Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world",
2016 (targeted, iterative); Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning
Models Resistant to Adversarial Attacks", ICLR 2018 (PGD, random start); Athalye, Engstrom,
Ilyas & Kwok, "Synthesizing Robust Adversarial Examples", ICML 2018, arXiv 1707.07397 (EOT).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from fastconv import ops
from fastconv.autograd import Tensor, concatenate, no_grad
from fastconv.backends import get_xp
from fastconv.interpret._common import (as_batch, check_logits, check_targets, get_host, inference,
                                        predict_logits, resolve_targets, unbatch)

__all__ = ["AttackResult", "fgsm", "pgd", "eot_pgd", "eot_evaluate", "eps_from_fraction"]


def eps_from_fraction(fraction: float, bounds=(0, 255)) -> float:
    """A budget given as a fraction of the value range, in the units of ``bounds``.

    Example:
        >>> eps_from_fraction(8 / 255, (0, 255))
        8.0
        >>> eps_from_fraction(0.1, (0, 1))
        0.1
    """
    lo, hi = _bounds(bounds)
    return float(fraction) * (hi - lo)


def _bounds(bounds):
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be (low, high), got {bounds!r}") from None
    if not lo < hi:
        raise ValueError(f"bounds must satisfy low < high, got {bounds!r}")
    return lo, hi


def _budget(eps, step_size, bounds, eps_unit):
    lo, hi = _bounds(bounds)
    if eps_unit in ("input", "pixels"):
        scale = 1.0
    elif eps_unit == "fraction":
        scale = hi - lo
    else:
        raise ValueError(f"eps_unit must be 'input' (alias 'pixels': the units of x and bounds) or 'fraction' "
                         f"(of bounds' range), got {eps_unit!r}")
    if eps is None or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0 in the units of bounds {bounds!r}, got {eps!r}")
    if step_size is not None and (not np.isfinite(step_size) or step_size <= 0):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    return float(eps) * scale, None if step_size is None else float(step_size) * scale, lo, hi


def _check_range(xb, lo, hi):
    xmin, xmax = float(xb.min()), float(xb.max())
    if xmin < lo or xmax > hi:
        raise ValueError(f"x has values in [{xmin:.4g}, {xmax:.4g}], outside bounds ({lo:g}, {hi:g}); pass bounds= "
                         f"the model's valid input range (pixels (0, 255) for efficientnet_lite0(), (0, 1) for "
                         f"the digits CNN)")
    if hi - lo >= 100 and xmax <= 1.0 and xmax > 0:
        warnings.warn(f"x lies within [0, 1] but bounds are ({lo:g}, {hi:g}): is x a 0..1 image given to a "
                      f"pixel model? eps is in the units of bounds", stacklevel=3)


def _round_inward(v64, dtype, up: bool, xp):
    """v64 (float64) cast to dtype, moved one ulp toward the inside where rounding crossed it."""
    v = v64.astype(dtype)
    if up:
        return xp.where(v.astype(np.float64) < v64, xp.nextafter(v, xp.asarray(np.inf, dtype)), v)
    return xp.where(v.astype(np.float64) > v64, xp.nextafter(v, xp.asarray(-np.inf, dtype)), v)


def _box(x0, eps, lo, hi):
    """The feasible box [max(x0 - eps, lo), min(x0 + eps, hi)] in x's dtype, exactly inside in float64.

    Computed in float64 and rounded inward: x0 - eps rounded to float32 can land a fraction of
    an ulp outside the ball (e.g. 0.3065 - 0.3), and then a clipped value would break the
    budget by 1e-8. One ulp always suffices because the nearest float is within one ulp.
    """
    xp = get_xp(x0)
    x64 = x0.astype(np.float64)
    lower = _round_inward(xp.maximum(x64 - eps, lo), x0.dtype, True, xp)
    upper = _round_inward(xp.minimum(x64 + eps, hi), x0.dtype, False, xp)
    # float64 inputs: the float64 subtraction x0 - lower itself rounds; nudge until it passes
    for _ in range(4):
        low_bad = (x64 - lower.astype(np.float64)) > eps
        up_bad = (upper.astype(np.float64) - x64) > eps
        if not (low_bad.any() or up_bad.any()):
            break
        lower = xp.where(low_bad, xp.nextafter(lower, xp.asarray(np.inf, x0.dtype)), lower)
        upper = xp.where(up_bad, xp.nextafter(upper, xp.asarray(-np.inf, x0.dtype)), upper)
    return lower, upper


def _verify(xa, x0, eps, lo, hi):
    d = float(get_xp(xa).abs(xa.astype(np.float64) - x0.astype(np.float64)).max()) if xa.size else 0.0
    if d > eps or float(xa.min()) < lo or float(xa.max()) > hi:
        raise RuntimeError(f"internal error: x_adv breaks the budget (Linf {d!r} > eps {eps!r} or values outside "
                           f"[{lo}, {hi}]); please report")


def _class_names(k):
    if k != 1000:
        return None
    try:
        from fastconv.models.imagenet import imagenet_labels
        return [s.split(",")[0] for s in imagenet_labels()]
    except ImportError:
        return None


@dataclass
class AttackResult:
    """The outcome of an attack, per item of the batch.

    Attributes:
        x_adv: adversarial inputs, the input's shape ((N, C, H, W) or (C, H, W)) and array
            module, within ``bounds`` and within ``eps`` of x in L-infinity.
        success: bool (N,): targeted — predicted == target; untargeted — predicted != label.
        target: int64 (N,) target classes, or None for an untargeted attack.
        label: int64 (N,) classes attacked away from (untargeted), or None.
        predicted: int64 (N,) the model's class for x_adv (untransformed).
        confidence: float64 (N,) P(target | x_adv) when targeted, else P(predicted | x_adv).
        linf, l2: float64 (N,) norms of x_adv - x, in the units of x.
        steps: gradient steps taken.
        history: float64 (steps + 1, N): the objective at each iterate — log P(target) when
            targeted, log P(label) when untargeted — row k before step k, the last row at
            x_adv; for EOT rows 0..steps-1 average over that step's random transformations
            and the last is untransformed.
        eps, bounds: the budget, in the units of x.
        method: 'fgsm', 'pgd' or 'eot_pgd'.
        seconds: wall time.
    """
    x_adv: object
    success: np.ndarray
    target: object
    predicted: np.ndarray
    confidence: np.ndarray
    linf: np.ndarray
    l2: np.ndarray
    steps: int
    history: np.ndarray
    eps: float = 0.0
    bounds: tuple = (0.0, 255.0)
    method: str = "pgd"
    label: object = None
    seconds: float = 0.0
    names: list = field(default=None, repr=False)
    info: dict = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    def _name(self, k) -> str:
        return f"{int(k)} '{self.names[int(k)]}'" if self.names else str(int(k))

    def __str__(self) -> str:
        n = len(self.success)
        goal = (f"targeted -> {self._name(self.target[0])}" if self.target is not None and len(set(self.target)) == 1
                else "targeted" if self.target is not None else "untargeted")
        extra = "".join(f", {k} {v}" for k, v in self.info.items())
        lines = [f"{self.method.upper()} ({goal}): {self.steps} steps, eps {self.eps:g} in the units of x "
                 f"(bounds ({self.bounds[0]:g}, {self.bounds[1]:g})){extra}, {self.seconds:.1f} s",
                 f"  success {int(np.sum(self.success))}/{n} ({100 * self.success_rate:.0f}%)"]
        what = "P(target)" if self.target is not None else "P(pred)"
        lp = "log P(target)" if self.target is not None else "log P(label)"
        for i in range(min(n, 10)):
            lines.append(f"  [{i}] {'ok ' if self.success[i] else 'no '} predicted {self._name(self.predicted[i])}, "
                         f"{what} {self.confidence[i]:.3f} | Linf {self.linf[i]:.4g} L2 {self.l2[i]:.4g} | "
                         f"{lp} {self.history[0, i]:.2f} -> {self.history[-1, i]:.2f}")
        if n > 10:
            lines.append(f"  ... {n - 10} more")
        return "\n".join(lines)


def _objective_grad(model, xa, cls, sign, transform, samples, rng, per_pass):
    """Gradient w.r.t. xa of sign * mean over samples of log P(cls | t(xa)), summed over items.

    The ``samples`` transformed copies go through the model ``per_pass`` images at a time;
    copies are laid out sample-major (row s * N + n is sample s of item n).
    Returns (grad like xa, objective per item (N,) = mean log P(cls | t(xa))).
    """
    xp = get_xp(xa)
    N = xa.shape[0]
    grad = xp.zeros_like(xa)
    total = np.zeros(N)
    k_per = max(1, per_pass // N) if transform is not None else 1
    done = 0
    while done < samples:
        k = min(k_per, samples - done)
        xt = Tensor(xa, requires_grad=True)
        inp = xt if transform is None else transform(concatenate([xt] * k, axis=0) if k > 1 else xt, rng)
        logits = check_logits(model(inp), N * k)
        check_targets(cls, logits.shape)
        lp = ops.log_softmax(logits, axis=1)[xp.arange(N * k), xp.asarray(np.tile(cls, k))]
        (lp.sum() * (sign / samples)).backward()
        grad += xt.grad
        total += get_host(lp.data).astype(np.float64).reshape(k, N).sum(axis=0)
        done += k
    return grad, total / samples


def _run(method, model, x, target, label, eps, steps, step_size, bounds, random_start, seed, eps_unit,
         transform=None, samples=1, batch_size=None):
    start = time.perf_counter()
    eps, step_size, lo, hi = _budget(eps, step_size, bounds, eps_unit)
    if steps < 0 or (method != "fgsm" and steps < 1):
        raise ValueError(f"steps must be >= 1, got {steps}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    xb, batched = as_batch(x, model=model)
    _check_range(xb, lo, hi)
    xp = get_xp(xb)
    N = xb.shape[0]
    tgt = resolve_targets(target, N, "target")
    lab = resolve_targets(label, N, "label")
    if tgt is not None and lab is not None:
        raise ValueError("give target= (targeted attack) or label= (untargeted), not both")
    if step_size is None:
        step_size = eps if method == "fgsm" else 2.5 * eps / steps  # Madry et al.'s choice
    rng = np.random.default_rng(seed)
    per_pass = batch_size or N * samples
    with inference(model):
        clean = predict_logits(model, xb)
        if tgt is None and lab is None:
            lab = get_host(clean.argmax(axis=1)).astype(np.int64)
        cls, sign = (tgt, 1.0) if tgt is not None else (lab, -1.0)
        check_targets(cls, clean.shape, "target" if tgt is not None else "label")
        xa = xb.copy()
        if random_start and eps > 0:
            xa = xa + xp.asarray(rng.uniform(-eps, eps, xb.shape).astype(xb.dtype))
        lower, upper = _box(xb, eps, lo, hi)
        xa = get_xp(xa).clip(xa, lower, upper)
        history = []
        for _ in range(steps):
            g, obj = _objective_grad(model, xa, cls, sign, transform, samples, rng, per_pass)
            history.append(obj)
            xa = xp.clip(xa + xa.dtype.type(step_size) * xp.sign(g), lower, upper)
        _verify(xa, xb, eps, lo, hi)
        logits = predict_logits(model, xa)
    logp = get_host(ops.log_softmax(Tensor(logits), axis=1).data).astype(np.float64)
    pred = logp.argmax(axis=1)
    rows = np.arange(N)
    history.append(logp[rows, cls])
    if tgt is not None:
        success, conf = pred == tgt, np.exp(logp[rows, tgt])
    else:
        success, conf = pred != lab, np.exp(logp[rows, pred])
    diff = get_host(xa).astype(np.float64) - get_host(xb).astype(np.float64)
    info = {} if transform is None else {"samples": samples, "transforms": repr(transform)}
    return AttackResult(x_adv=unbatch(xa, batched), success=success, target=tgt, predicted=pred.astype(np.int64),
                        confidence=conf, linf=np.abs(diff).reshape(N, -1).max(axis=1),
                        l2=np.sqrt((diff ** 2).reshape(N, -1).sum(axis=1)), steps=steps,
                        history=np.array(history), eps=eps, bounds=(lo, hi), method=method, label=lab,
                        seconds=time.perf_counter() - start, names=_class_names(logits.shape[1]), info=info)


def fgsm(model, x, target=None, *, eps, bounds=(0, 255), eps_unit: str = "input", label=None) -> AttackResult:
    """Fast Gradient Sign Method: one step of size eps along the sign of the gradient.

    Untargeted (target None): x + eps * sign(grad CE(label)), away from ``label`` (default:
    the predicted class). Targeted: x + eps * sign(grad log P(target)) (Kurakin et al.).

    Args:
        model: ``fastconv.nn.Module`` (or callable) returning logits (N, classes).
        x: array or Tensor (N, C, H, W) or (C, H, W) within ``bounds``; never modified.
        target: class index / ImageNet name / one per item, or None (untargeted).
        eps: keyword-only, required: the L-infinity budget IN THE UNITS OF x AND bounds
            (pixel levels for (0, 255): eps=8 is 8/255 of the range) — or a fraction of the
            range with ``eps_unit='fraction'``.
        bounds: (low, high) valid input range (default (0, 255), pixel images).
        eps_unit: 'input' (default; alias 'pixels') or 'fraction'.
        label: the true class for an untargeted attack (default: the predicted class).

    Returns:
        :class:`AttackResult` (steps = 1).

    Example:
        >>> res = fgsm(model, x, eps=2)                 # doctest: +SKIP
    """
    return _run("fgsm", model, x, target, label, eps, 1, None, bounds, False, 0, eps_unit)


def pgd(model, x, target=None, *, eps, steps: int = 10, step_size=None, bounds=(0, 255), random_start: bool = True,
        seed: int = 0, eps_unit: str = "input", label=None) -> AttackResult:
    """Projected gradient ascent with signed steps in the L-infinity ball (Madry et al.'s PGD).

    Targeted: maximize log P(target | x_adv), the lecture's objective. Untargeted (target
    None): maximize the cross-entropy of ``label`` (default: the clean prediction). After
    every step x_adv is projected onto {|x_adv - x| <= eps} and onto ``bounds``.

    Args:
        model, x, target, bounds, eps_unit, label: as :func:`fgsm`.
        eps: keyword-only, required: L-infinity budget in the units of x and bounds
            (eps=8 with bounds (0, 255) is the classic 8/255).
        steps: gradient steps (default 10).
        step_size: per-step change, same units as eps (default 2.5 * eps / steps).
        random_start: start from a uniform random point of the ball (default True).
        seed: seed of the random start (results are deterministic given it).

    Returns:
        :class:`AttackResult`.

    Example:
        >>> res = pgd(model, x, 'burrito', eps=8, steps=20)     # doctest: +SKIP
        >>> res.success, res.linf                                 # doctest: +SKIP
        (array([ True]), array([8.]))
    """
    return _run("pgd", model, x, target, label, eps, steps, step_size, bounds, random_start, seed, eps_unit)


def eot_pgd(model, x, target, *, eps, steps: int = 10, step_size=None, transforms=None, samples: int = 8,
            bounds=(0, 255), random_start: bool = True, seed: int = 0, eps_unit: str = "input",
            batch_size: int | None = None) -> AttackResult:
    """PGD on the Expectation Over Transformation: maximize E_t log P(target | t(x_adv)) within eps.

    Each step draws ``samples`` random transformations t_1..t_S of the current x_adv (one
    batch of S copies through ``transforms``), and steps along the sign of the gradient of
    (1/S) sum_s log P(target | t_s(x_adv)): an unbiased estimate of the expectation's
    gradient (Athalye et al.). The budget is the plain |x_adv - x| <= eps of :func:`pgd`.

    Args:
        model, x, bounds, eps_unit: as :func:`pgd`.
        target: class index / ImageNet name / one per item; None attacks untargeted
            (minimizes the expected log P of the predicted class).
        eps: keyword-only, required: L-infinity budget in the units of x and bounds.
        steps, step_size, random_start: as :func:`pgd`.
        transforms: a transform ``t(x, rng)`` from :mod:`fastconv.interpret.transforms`
            (e.g. ``compose(random_affine(15, (0.9, 1.1), 10), brightness(20), gaussian_noise(5))``);
            required.
        samples: transformations per step (default 8).
        batch_size: transformed images per forward/backward pass (default all N * samples at
            once); the gradient is accumulated over passes.
        seed: seeds one generator that draws the random start and then every transformation.

    Returns:
        :class:`AttackResult`; ``history`` rows hold the EOT objective (mean over the step's
        transformations).

    Example:
        >>> from fastconv.interpret import transforms as T
        >>> t = T.compose(T.random_affine(15, (0.9, 1.1), 10), T.brightness(20), T.gaussian_noise(5))
        >>> res = eot_pgd(model, x, 'burrito', eps=8, steps=20, transforms=t, samples=8)   # doctest: +SKIP
    """
    if transforms is None or not callable(transforms):
        raise ValueError("eot_pgd needs transforms=, a transform t(x, rng) (see fastconv.interpret.transforms)")
    return _run("eot_pgd", model, x, target, None, eps, steps, step_size, bounds, random_start, seed, eps_unit,
                transforms, samples, batch_size)


def eot_evaluate(model, x_adv, target, transforms, n: int = 100, seed: int = 0, batch_size: int = 25,
                 per_item: bool = False):
    """The rate at which the model predicts ``target`` under ``n`` random transformations of x_adv.

    Deterministic given ``seed``: the transformations are drawn from
    ``np.random.default_rng(seed)`` in the same order for any x_adv of the same shape (with
    the same ``n`` and ``batch_size``), so a PGD and an EOT example evaluated with the same
    seed face the SAME n transformations.

    Args:
        model: returns logits (N, classes).
        x_adv: array / Tensor (N, C, H, W) or (C, H, W), or an :class:`AttackResult`.
        target: class index / ImageNet name / one per item.
        transforms: a transform ``t(x, rng)``.
        n: transformations per item (default 100).
        seed: generator seed (default 0).
        batch_size: images per forward pass (default 25).
        per_item: return the rate per item (N,) instead of the overall float.

    Returns:
        float in [0, 1] (or float64 (N,) with ``per_item``).

    Example:
        >>> eot_evaluate(model, res, 'burrito', t, n=100)     # doctest: +SKIP
        0.93
    """
    if isinstance(x_adv, AttackResult):
        x_adv = x_adv.x_adv
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
    if transforms is None or not callable(transforms):
        raise ValueError("eot_evaluate needs transforms=, a transform t(x, rng)")
    xb, _ = as_batch(x_adv, "x_adv", model)
    N = xb.shape[0]
    tgt = resolve_targets(target, N)
    if tgt is None:
        raise ValueError("eot_evaluate needs a target class")
    rng = np.random.default_rng(seed)
    hits = np.zeros(N)
    k_per = max(1, batch_size // N)
    done = 0
    with inference(model), no_grad():
        while done < n:
            k = min(k_per, n - done)
            xr = Tensor(get_xp(xb).concatenate([xb] * k)) if k > 1 else Tensor(xb)
            logits = check_logits(model(transforms(xr, rng)), N * k)
            check_targets(tgt, logits.shape)
            pred = get_host(logits.data.argmax(axis=1)).reshape(k, N)
            hits += (pred == tgt).sum(axis=0)
            done += k
    rates = hits / n
    return rates if per_item else float(rates.mean())
