"""Feature visualization by activation maximization: gradient ascent on an image.

    objective x parameterization x transforms (+ regularizers)

``visualize`` builds the image from its parameters (:mod:`~fastconv.interpret.param`),
applies a random transformation (:mod:`~fastconv.interpret.transforms`: jitter, scale,
rotation; the image must keep working when moved), runs the model while recording the layers
the objective reads (:mod:`~fastconv.interpret.objectives`), and takes a step of Adam (or SGD)
on the parameters to increase the objective minus any penalties; regularizers
(:mod:`~fastconv.interpret.regularizers`) may reshape the gradient and change the image
between steps. It works with any fastconv Module: EfficientNet-Lite0 at 128 px, or the 8x8
digits CNN.

Example:
    >>> from fastconv.models import efficientnet_lite0
    >>> from fastconv.interpret import objectives as obj, regularizers as reg
    >>> model = efficientnet_lite0().fused()
    >>> res = visualize(model, obj.class_logit('robin'), steps=64,
    ...                 regularizers=[reg.gaussian_blur(0.5, every=4)])     # doctest: +SKIP
    >>> res.image.shape                                                       # doctest: +SKIP
    (128, 128, 3)

Reference: Erhan et al., "Visualizing Higher-Layer Features of a Deep Network", 2009;
Simonyan et al., 2014; Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fastconv import nn, optim
from fastconv.autograd import Tensor, no_grad
from fastconv.backends import get_xp, to_device
from fastconv.interpret._common import model_device
from fastconv.interpret.objectives import Objective
from fastconv.interpret.param import ImageFunction, pixel_image
from fastconv.progress import ProgressBar

__all__ = ["visualize", "VisResult", "standard_transforms", "ProgressBar"]


@dataclass
class VisResult:
    """The outcome of :func:`visualize`.

    Attributes:
        images: uint8 (N, H, W, C) (C = 1 squeezed to (N, H, W)).
        pixels: float32 (N, C, H, W), the final image in the model's units.
        history: the objective (without penalties, under that step's random transform) per step.
        initial_value, final_value: the objective on the untransformed first and last image.
        seconds: wall time of the optimization.
        objective: the objective's name; regularizers: their names.
    """

    images: np.ndarray
    pixels: np.ndarray
    history: list
    initial_value: float
    final_value: float
    seconds: float
    objective: str
    regularizers: list = field(default_factory=list)

    @property
    def image(self) -> np.ndarray:
        """The first image of the batch, uint8 (H, W, C) or (H, W)."""
        return self.images[0]


def standard_transforms(size: int = 128):
    """Lucid's ``standard_transforms``, scaled to an image of ``size`` pixels, keeping the size.

    At 128 px: pad 10 (reflect), jitter 8, random scale 0.9..1.1, random rotation
    -10..10 degrees, jitter 12: the model sees a 128 x 128 image again, so models with a
    fixed input size (a Linear layer after Flatten) work too. Small images (< 32 px, the
    8x8 digits) get pad 1 + jitter 2: a random shift of up to one pixel.
    """
    from fastconv.interpret import transforms as T
    if size < 32:
        return [T.pad(1, mode="reflect"), T.jitter(2)]
    k = size / 128.0
    p, j = max(1, round(10 * k)), max(1, round(8 * k))
    return [T.pad(p, mode="reflect"), T.jitter(j),
            T.random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
            T.random_rotate(list(range(-10, 11)) + 5 * [0]), T.jitter(2 * p - j)]


class _Stop(Exception):
    """Raised by a hook once every layer the objective reads has run: the rest of the forward is skipped."""


def _optimizer(optimizer, params, lr):
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer(params, lr)
    if optimizer == "adam":
        return optim.Adam(params, lr=lr)
    if optimizer == "sgd":
        return optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be 'adam', 'sgd' or a callable (params, lr) -> Optimizer, got {optimizer!r}")


def _compose(transforms):
    if transforms is None or callable(transforms):
        return transforms
    ts = list(transforms)
    if not ts:
        return None
    from fastconv.interpret.transforms import compose
    return compose(*ts)


def _device_pixels(image_fn):
    """The current image (float32, as ImageFunction.pixels) on the parameters' device, without a graph."""
    with no_grad():
        return image_fn().data.astype(np.float32)


class _Runner:
    """Runs the model once, capturing the objective's layers; stops early when the logits are not needed."""

    def __init__(self, model, objective: Objective):
        table = dict(model.named_modules())
        missing = [n for n in objective.layers if n not in table]
        if missing:
            raise KeyError(f"objective {objective.name!r} reads layers {missing}, which the model does not have; "
                           f"names are like {[n for n in table if n][:12]} ...")
        self.model, self.objective, self.table = model, objective, table

    def __call__(self, x: Tensor) -> Tensor:
        acts, need = {}, set(self.objective.layers)
        stop_early = not self.objective.needs_output and bool(need)

        def hook(name):
            def fn(module, inputs, out):
                acts[name] = out
                if stop_early and need <= acts.keys():
                    raise _Stop
            return fn

        handles = [self.table[n].register_forward_hook(hook(n)) for n in need]
        out = None
        try:
            out = self.model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return self.objective(acts, out)


def visualize(model, objective: Objective, shape=(1, 3, 128, 128), param=None, transforms=None,
              regularizers=(), optimizer="adam", lr: float = 0.05, steps: int = 128, seed: int = 0,
              progress: bool = True, value_range=(0.0, 255.0), callback=None) -> VisResult:
    """Find an image that maximizes ``objective`` for ``model`` by gradient ascent.

    Args:
        model: any fastconv Module taking (N, C, H, W) in ``value_range`` units.
        objective: an :class:`~fastconv.interpret.objectives.Objective` (maximized).
        shape: (N, C, H, W) of the image, used when ``param`` is None.
        param: ``(params, image_fn)`` from :mod:`~fastconv.interpret.param`; default
            ``pixel_image(shape, value_range=value_range, seed=seed)``.
        transforms: a list of transform closures ``t(x, rng) -> Tensor`` applied in order each
            step (or one composed closure); None: :func:`standard_transforms` for the image
            size; ``[]``: none.
        regularizers: :class:`~fastconv.interpret.regularizers.Regularizer` objects.
        optimizer: 'adam' (fastconv.optim.Adam), 'sgd', or a callable ``(params, lr) -> Optimizer``.
        lr: learning rate, in parameter units (0.05 is Lucid's; see param.py for the scale).
        steps: number of updates.
        seed: seeds the initial noise and the random transforms.
        progress: draw a progress bar on stderr.
        value_range: the model's pixel range, (0, 255) for Lite0, (0, 1) for the digits CNN.
        callback: ``callback(step, image_fn, value)`` after each step (e.g. to save snapshots).

    Returns:
        :class:`VisResult` with the uint8 images and the objective's history.

    The model's parameters are frozen during the run (no weight gradients are computed) and
    its train/eval mode is restored afterwards. The image parameters are moved (in place) to
    the model's device, so a model on 'cuda' optimizes the image on the GPU; ``images`` and
    ``pixels`` of the result are NumPy arrays either way.
    """
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be an Objective (see fastconv.interpret.objectives), got "
                        f"{type(objective).__name__}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if param is None:
        param = pixel_image(shape, value_range=value_range, seed=seed)
    params, image_fn = param
    params = list(params)
    if not isinstance(image_fn, ImageFunction):
        raise TypeError("param must be (params, image_fn) from fastconv.interpret.param")
    device = model_device(model)
    for p in params:
        p.data = to_device(p.data, device)  # image_fn reads the same Tensors, so it follows
    transform = _compose(standard_transforms(image_fn.shape[-1]) if transforms is None else transforms)
    regularizers = list(regularizers)
    rng = np.random.default_rng(seed)
    run = _Runner(model, objective)
    opt = _optimizer(optimizer, params, lr)
    bar = ProgressBar(steps, objective.name[:40]) if progress and steps else None
    history = []
    start = time.perf_counter()
    with nn.frozen(model):
        with no_grad():
            initial = float(run(Tensor(_device_pixels(image_fn))).item())
        for step in range(1, steps + 1):
            image = image_fn()
            x = transform(image, rng) if transform is not None else image
            value = run(x)
            loss = -value
            for r in regularizers:
                pen = r.penalty(image, image_fn.value_range)
                if pen is not None:
                    loss = loss + pen
            opt.zero_grad()
            loss.backward()
            for p in params:
                if p.grad is None:
                    p.grad = get_xp(p.data).zeros_like(p.data)
                for r in regularizers:
                    p.grad = r.on_gradient(p.grad)
            opt.step()
            for r in regularizers:
                r.after_step(image_fn, step)
            history.append(float(value.item()))
            if callback is not None:
                callback(step, image_fn, history[-1])
            if bar:
                bar(step, f"{history[-1]:.3g}")
        pixels = image_fn.pixels()
        with no_grad():
            final = float(run(Tensor(_device_pixels(image_fn))).item())
    lo, hi = image_fn.value_range
    u8 = np.clip(np.rint((pixels.astype(np.float64) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    u8 = u8.transpose(0, 2, 3, 1)
    if u8.shape[-1] == 1:
        u8 = u8[..., 0]
    return VisResult(u8, pixels, history, initial, final, time.perf_counter() - start, objective.name,
                     [r.name for r in regularizers])
