"""Attribution: saliency maps, Guided Backprop, SmoothGrad, Input x Gradient, Integrated Gradients,
Grad-CAM, and Occlusion (no gradients: windows of the input replaced).

Each function has Captum's shape, without a constructor: it takes the model, the inputs and
the target class, and returns an :class:`Attribution` whose ``attr`` has the input's shape
(what Captum returns) and whose ``map`` is the (N, H, W) (or (H, W)) picture of it, ready for
:func:`fastconv.io.normalize_map` / :func:`fastconv.io.overlay`. ``np.asarray(result)`` is
``result.attr``.

Common arguments:
    model: a ``fastconv.nn.Module`` (or any callable Tensor -> logits (N, classes)). It runs in
        eval mode with its parameters frozen, and every module's mode and every parameter's
        ``requires_grad`` are restored afterwards; parameter ``.grad`` arrays are not touched.
    x: NumPy (or CuPy) array or Tensor, (N, C, H, W) or (C, H, W), in the units the model
        takes (pixels 0..255 for ``efficientnet_lite0()``). The caller's array and Tensor
        (data, ``requires_grad``, ``.grad``) are left exactly as they were. Integer images are
        read as float32.
    target: class index, ImageNet class name ('burrito', resolved by
        ``fastconv.models.imagenet.label_index``), a sequence of these (one per item), or None
        for each item's predicted class.

The score differentiated is the target's logit (the pre-softmax class score y^c), as in
Simonyan et al. and Selvaraju et al.: the softmax would mix in every other class.

Example:
    >>> from fastconv.models import efficientnet_lite0, imagenet_pixels, sample_image
    >>> model = efficientnet_lite0().fused()
    >>> x = imagenet_pixels(sample_image("chelsea"))                   # (3, 224, 224), 0..255
    >>> s = saliency(model, x, "tabby")
    >>> s.attr.shape, s.map.shape
    ((3, 224, 224), (224, 224))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from fastconv import ops
from fastconv.autograd import Tensor
from fastconv.backends import get_xp
from fastconv.geometry import _positive
from fastconv.interpret._common import (as_batch, check_logits, check_targets, class_grad, get_host, inference,
                                        predict_logits, resolve_targets, unbatch)
from fastconv.progress import ProgressBar

__all__ = ["Attribution", "saliency", "guided_backprop", "smoothgrad", "input_x_gradient", "integrated_gradients",
           "grad_cam", "guided_grad_cam", "occlusion", "reduce_channels"]


def reduce_channels(attr, reduce: str = "max_abs"):
    """A (N, H, W) map from an attribution (N, C, H, W) (or (H, W) from (C, H, W)).

    Args:
        attr: attribution array with channels on axis -3.
        reduce: 'max_abs' (max over channels of |a|: Simonyan et al.'s saliency map),
            'abs_sum' (|sum over channels|: a pixel's total contribution, for Input x Gradient
            and Integrated Gradients), 'sum' (signed sum), 'l2' (Euclidean norm over channels).

    Example:
        >>> reduce_channels(np.array([[[1.0]], [[-3.0]]]))
        array([[3.]])
    """
    xp = get_xp(attr)
    if attr.ndim < 3:
        raise ValueError(f"attr must be (N, C, H, W) or (C, H, W), got shape {tuple(attr.shape)}")
    if reduce == "max_abs":
        return xp.abs(attr).max(axis=-3)
    if reduce == "abs_sum":
        return xp.abs(attr.sum(axis=-3))
    if reduce == "sum":
        return attr.sum(axis=-3)
    if reduce == "l2":
        return xp.sqrt((attr * attr).sum(axis=-3))
    raise ValueError(f"reduce must be 'max_abs', 'abs_sum', 'sum' or 'l2', got {reduce!r}")


@dataclass
class Attribution:
    """What an attribution method returns.

    Attributes:
        attr: the attribution, the input's shape ((N, C, H, W) or (C, H, W)); for Grad-CAM the
            upsampled map with one channel, (N, 1, H, W) or (1, H, W).
        map: the picture, (N, H, W) or (H, W), non-negative except for reduce='sum' and for
            occlusion (a signed drop of the score).
        target: the class explained per item, int64 (N,) (a scalar for a (C, H, W) input).
        score: the target logit at x, float64 (N,) (a scalar for a (C, H, W) input).
        method: name of the method.
        delta: Integrated Gradients only: the completeness gap
            sum(attr) - (f(x) - f(baseline)) per item (N,) (scalar for a (C, H, W) input).
        low_res: Grad-CAM only: the map at the layer's resolution, (N, h, w) or (h, w).
        reduce: how ``map`` was made from ``attr`` (see :func:`reduce_channels`).
    """
    attr: object
    map: object
    target: object
    score: object
    method: str
    delta: Optional[object] = None
    low_res: Optional[object] = None
    reduce: str = "max_abs"
    extra: dict = field(default_factory=dict)

    def __array__(self, dtype=None, copy=None):
        a = get_host(self.attr)
        return a if dtype is None else a.astype(dtype)

    @property
    def shape(self) -> tuple:
        return tuple(self.attr.shape)

    def __repr__(self) -> str:
        d = "" if self.delta is None else f", delta={np.round(self.delta, 6)!r}"
        return (f"Attribution(method={self.method!r}, attr shape={self.shape}, map shape={tuple(self.map.shape)}, "
                f"target={self.target!r}, score={np.round(self.score, 4)!r}{d})")


def _result(attr, grad_target, score, batched, method, reduce, **kw) -> Attribution:
    m = reduce_channels(attr, reduce)
    return Attribution(unbatch(attr, batched), unbatch(m, batched), unbatch(grad_target, batched),
                       unbatch(score, batched), method, reduce=reduce, **kw)


def saliency(model, x, target=None, abs: bool = True) -> Attribution:
    """Vanilla gradient saliency: d(target logit) / d(input); map = max over channels of |gradient|.

    Args:
        model, x, target: see the module docstring.
        abs: return |gradient| as ``attr`` (Captum's ``Saliency(abs=True)``); False keeps the sign.

    Returns:
        :class:`Attribution` with ``attr`` (input's shape) = the gradient (or its absolute
        value) and ``map`` (N, H, W) = max over channels of |gradient|.

    Example:
        >>> s = saliency(model, x, 'tabby')           # doctest: +SKIP
        >>> save_png(s.map, 'saliency.png')           # doctest: +SKIP

    Reference: Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising
    Image Classification Models and Saliency Maps", ICLR workshop 2014.
    """
    xb, batched = as_batch(x, model=model)
    tgt = resolve_targets(target, xb.shape[0])
    with inference(model):
        g, _, tgt, score = class_grad(model, xb, tgt)
    attr = get_xp(g).abs(g) if abs else g
    return _result(attr, tgt, score, batched, "saliency", "max_abs")


def guided_backprop(model, x, target=None) -> Attribution:
    """Guided Backpropagation: the gradient with every rectifier passing back only positive gradients.

    Each ReLU and ReLU6 of the model (modules, ``ops.relu``/``relu6`` and the convolutions'
    fused activations alike) lets through ``max(g, 0)`` where its input was in the linear
    range, so only evidence *for* the class flows back (:func:`fastconv.ops.guided_rectifiers`).
    The result is sharper than the plain gradient; note it depends little on the class
    (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

    Args:
        model, x, target: see the module docstring.

    Returns:
        :class:`Attribution` with the signed guided gradient as ``attr`` (input's shape) and
        ``map`` = max over channels of its absolute value.

    Example:
        >>> gb = guided_backprop(model, x, 'tabby')   # doctest: +SKIP

    Reference: Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All
    Convolutional Net", ICLR workshop 2015.
    """
    xb, batched = as_batch(x, model=model)
    tgt = resolve_targets(target, xb.shape[0])
    with inference(model), ops.guided_rectifiers():
        g, _, tgt, score = class_grad(model, xb, tgt)
    return _result(g, tgt, score, batched, "guided_backprop", "max_abs")


def _input_range(xb):
    """Per-item (max - min) of the input, shape (N, 1, 1, 1): SmoothGrad's noise scale."""
    span = xb.max(axis=(1, 2, 3), keepdims=True) - xb.min(axis=(1, 2, 3), keepdims=True)
    return get_xp(xb).where(span > 0, span, 1)


def smoothgrad(model, x, target=None, n: int = 25, sigma: float = 0.15, batch_size: int = 8, seed: int = 0,
               abs: bool = True) -> Attribution:
    """SmoothGrad: the saliency averaged over ``n`` noisy copies x + N(0, (sigma * (max x - min x))^2).

    Args:
        model, x, target: see the module docstring.
        n: noisy samples per item (default 25).
        sigma: noise standard deviation as a fraction of each item's value range max - min
            (default 0.15, i.e. 38 pixel levels for a full-range 0..255 photo; the paper's
            10-20%).
        batch_size: noisy images per forward/backward pass (bounds the memory: one pass
            holds ``batch_size`` images' activations, whatever n and N are).
        seed: seed of the noise (the result is deterministic given it).
        abs: average |gradient| (default, Captum's NoiseTunnel over Saliency(abs=True)) or the
            signed gradient.

    Returns:
        :class:`Attribution`; ``map`` = max over channels of |attr|; ``score`` is the target
        logit at the clean x.

    Example:
        >>> sg = smoothgrad(model, x, 'tabby', n=16, batch_size=4)     # doctest: +SKIP

    Reference: Smilkov, Thorat, Kim, Viegas & Wattenberg, "SmoothGrad: removing noise by
    adding noise", 2017.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 (a fraction of the input range), got {sigma}")
    xb, batched = as_batch(x, model=model)
    xp = get_xp(xb)
    N = xb.shape[0]
    tgt = resolve_targets(target, N)
    rng = np.random.default_rng(seed)
    std = sigma * _input_range(xb)
    total = xp.zeros_like(xb)
    # every (item, sample) pair is one row of a flat job list, cut into batches of batch_size
    items = np.repeat(np.arange(N), n)
    with inference(model):
        logits = predict_logits(model, xb, batch_size)
        if tgt is None:
            tgt = get_host(logits.argmax(axis=1)).astype(np.int64)
        check_targets(tgt, logits.shape)
        for s in range(0, len(items), batch_size):
            idx = items[s:s + batch_size]
            sel = xp.asarray(idx)  # index arrays on the inputs' device (NumPy or CuPy)
            noise = xp.asarray(rng.standard_normal((len(idx),) + xb.shape[1:]).astype(xb.dtype))
            g, _, _, _ = class_grad(model, xb[sel] + std[sel] * noise, tgt[idx])
            g = xp.abs(g) if abs else g
            for i in np.unique(idx):  # a chunk holds whole runs of one item's samples
                lo, hi = np.searchsorted(idx, i), np.searchsorted(idx, i, side="right")
                total[int(i)] += g[lo:hi].sum(axis=0)
    score = get_host(logits[xp.arange(N), xp.asarray(tgt)]).astype(np.float64)
    return _result(total / n, tgt, score, batched, "smoothgrad", "max_abs", extra={"n": n, "sigma": sigma})


def input_x_gradient(model, x, target=None) -> Attribution:
    """Input x Gradient: ``x * d(target logit)/dx``, each input value's first-order contribution.

    Args:
        model, x, target: see the module docstring.

    Returns:
        :class:`Attribution`, ``attr`` signed (input's shape), ``map`` = |sum over channels|.
        Note the attribution depends on where the input's zero is: for a pixel model 0 is black.

    Example:
        >>> a = input_x_gradient(model, x, 'tabby')     # doctest: +SKIP

    Reference: Shrikumar, Greenside & Kundaje, "Learning Important Features Through
    Propagating Activation Differences" (DeepLIFT), ICML 2017.
    """
    xb, batched = as_batch(x, model=model)
    tgt = resolve_targets(target, xb.shape[0])
    with inference(model):
        g, _, tgt, score = class_grad(model, xb, tgt)
    return _result(xb * g, tgt, score, batched, "input_x_gradient", "abs_sum")


def _quadrature(steps: int, method: str):
    """Nodes alpha in [0, 1] and weights (summing to 1) of the path integral."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        alphas = np.linspace(0, 1, steps)
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] /= 2
        return alphas, w
    if method == "riemann_middle":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    raise ValueError(f"method must be 'gausslegendre', 'riemann_trapezoid' or 'riemann_middle', got {method!r}")


def _baseline_batch(baseline, xb, batched: bool):
    """The baseline x' as an array of xb's shape: None -> zeros, a number, or an array (or Tensor)
    broadcastable to the caller's x."""
    xp = get_xp(xb)
    if baseline is None:
        return xp.zeros_like(xb)
    b = baseline.data if isinstance(baseline, Tensor) else baseline
    b = xp.asarray(b, dtype=xb.dtype)
    shape = xb.shape if batched else xb.shape[1:]
    try:
        return xp.broadcast_to(b, shape).reshape(xb.shape).copy()
    except ValueError:
        raise ValueError(f"baseline of shape {tuple(b.shape)} does not broadcast to x's shape {shape}") from None


def integrated_gradients(model, x, target=None, baseline=None, steps: int = 50, batch_size: int = 8,
                         method: str = "gausslegendre") -> Attribution:
    """Integrated Gradients: (x - x') * integral over alpha of grad f(x' + alpha (x - x')), f = target logit.

    The integral runs by quadrature over ``steps`` points of the straight path; the
    ``steps * N`` path images go through the model ``batch_size`` at a time, so memory is that
    of one batch whatever ``steps`` is (Captum's ``internal_batch_size``).

    Args:
        model, x, target: see the module docstring.
        baseline: x' — None for zeros (black, for a pixel model), a number, or an array
            broadcastable to x's shape.
        steps: quadrature points (default 50, as Captum).
        batch_size: path images per forward/backward pass (default 8).
        method: 'gausslegendre' (default, as Captum), 'riemann_trapezoid' or 'riemann_middle'.

    Returns:
        :class:`Attribution` with signed ``attr`` (input's shape), ``map`` = |sum over
        channels|, ``score`` = f(x), and ``delta`` = sum(attr) - (f(x) - f(x')) per item,
        the completeness gap (0 for the exact integral; shrinks as steps grow; Captum's
        ``convergence_delta``). ``extra['baseline_score']`` = f(x').

    Example:
        >>> ig = integrated_gradients(model, x, 'tabby', steps=32, batch_size=8)   # doctest: +SKIP
        >>> float(abs(ig.delta))                                                  # doctest: +SKIP

    Reference: Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    xb, batched = as_batch(x, model=model)
    xp = get_xp(xb)
    N = xb.shape[0]
    tgt = resolve_targets(target, N)
    base = _baseline_batch(baseline, xb, batched)
    alphas, weights = _quadrature(steps, method)
    diff = xb - base
    total = xp.zeros_like(xb)
    jobs = [(i, k) for i in range(N) for k in range(steps)]
    with inference(model):
        both = predict_logits(model, xp.concatenate([xb, base]), batch_size)
        if tgt is None:
            tgt = get_host(both[:N].argmax(axis=1)).astype(np.int64)
        check_targets(tgt, both.shape)
        for s in range(0, len(jobs), batch_size):
            chunk = jobs[s:s + batch_size]
            ii = np.array([i for i, _ in chunk])
            sel = xp.asarray(ii)
            a = xp.asarray(np.array([alphas[k] for _, k in chunk], xb.dtype)).reshape(-1, 1, 1, 1)
            g, _, _, _ = class_grad(model, base[sel] + a * diff[sel], tgt[ii])
            w = xp.asarray(np.array([weights[k] for _, k in chunk], xb.dtype)).reshape(-1, 1, 1, 1)
            for j, i in enumerate(ii):
                total[int(i)] += w[j] * g[j]
    attr = diff * total
    rows = xp.arange(N)
    fx = get_host(both[:N][rows, xp.asarray(tgt)]).astype(np.float64)
    fb = get_host(both[N:][rows, xp.asarray(tgt)]).astype(np.float64)
    delta = get_host(attr.reshape(N, -1).sum(axis=1)).astype(np.float64) - (fx - fb)
    return _result(attr, tgt, fx, batched, "integrated_gradients", "abs_sum", delta=unbatch(delta, batched),
                   extra={"baseline_score": unbatch(fb, batched), "steps": steps, "method": method})


def grad_cam(model, x, target=None, layer: str = None, relu: bool = True) -> Attribution:
    """Grad-CAM: ReLU(sum_k w_k A^k) at a conv layer, w_k = spatial mean of d(target logit)/dA^k.

    The map is computed at the layer's resolution (h, w) and then upsampled to the input's
    (H, W) by BILINEAR interpolation with align_corners=False (PyTorch's
    ``F.interpolate(mode='bilinear', align_corners=False)``: pixel centres aligned, edges
    clamped), so it overlays the input pixel for pixel. Both maps are returned.

    The gradient is taken at the layer's output: a forward hook swaps that output for a
    leaf, so the backward pass stops there (no work below the layer), and a layer that runs
    more than once in one forward (a reused module) is refused instead of silently mixing its
    calls.

    Args:
        model, x, target: see the module docstring; the model must be a ``fastconv.nn.Module``.
        layer: dotted sub-module name as in ``model.named_modules()`` ('_blocks.15' for the
            last MBConv block of EfficientNet-Lite0, '2' for the second conv of the digits
            CNN); its output must be (N, K, h, w). Required.
        relu: apply the ReLU of the paper (default); False keeps negative evidence.

    Returns:
        :class:`Attribution` with ``map`` (N, H, W) the upsampled map (non-negative when
        ``relu``), ``attr`` = ``map`` with a channel axis (N, 1, H, W), and ``low_res``
        (N, h, w) the map at the layer's resolution.

    Example:
        >>> cam = grad_cam(model, x, 'tabby', layer='_blocks.15')    # doctest: +SKIP
        >>> cam.low_res.shape, cam.map.shape                          # doctest: +SKIP
        ((7, 7), (224, 224))

    Reference: Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: Visual
    Explanations from Deep Networks via Gradient-based Localization", ICCV 2017.
    """
    if layer is None:
        raise ValueError("grad_cam needs layer=, a dotted name from model.named_modules() (e.g. '_blocks.15')")
    if not hasattr(model, "named_modules"):
        raise TypeError(f"grad_cam needs a fastconv.nn.Module (to hook layer {layer!r}), got {type(model).__name__}")
    table = dict(model.named_modules())
    if isinstance(layer, str):
        if layer not in table:
            names = [k for k in table if k]
            more = f" and {len(names) - 40} more" if len(names) > 40 else ""
            raise KeyError(f"grad_cam: no layer named {layer!r}; layers are {names[:40]}{more}")
        module = table[layer]
    else:
        module = layer
        names = [k for k, m in table.items() if m is module]
        if not names:
            raise ValueError("grad_cam: the layer module given is not part of the model")
        layer = names[0]
    xb, batched = as_batch(x, model=model)
    xp = get_xp(xb)
    N, H, W = xb.shape[0], xb.shape[2], xb.shape[3]
    tgt = resolve_targets(target, N)
    seen = []

    def hook(m, inputs, out):
        # a fresh leaf in place of the layer's output: d score / d activation lands in its .grad
        leaf = Tensor(out.data, requires_grad=True)
        seen.append(leaf)
        return leaf

    with inference(model):
        handle = module.register_forward_hook(hook)
        try:
            logits = check_logits(model(Tensor(xb)), N)
        finally:
            handle.remove()
        if len(seen) != 1:
            raise RuntimeError(f"grad_cam: layer {layer!r} ran {len(seen)} times in one forward; Grad-CAM needs a "
                               f"layer that runs once (a module reused in the forward, or never called)")
        act = seen[0]
        if act.ndim != 4 or act.shape[0] != N:
            raise ValueError(f"grad_cam: layer {layer!r} outputs shape {act.shape}; it must be a conv feature map "
                             f"(N, K, h, w)")
        if tgt is None:
            tgt = get_host(logits.data.argmax(axis=1)).astype(np.int64)
        check_targets(tgt, logits.shape)
        picked = logits[xp.arange(N), xp.asarray(tgt)]
        picked.sum().backward()
    weights = act.grad.mean(axis=(2, 3), keepdims=True)           # (N, K, 1, 1): alpha_k^c
    cam = (weights * act.data).sum(axis=1)                         # (N, h, w)
    if relu:
        cam = xp.maximum(cam, 0)
    mh = xp.asarray(ops.interp_matrix(cam.shape[1], H, "linear", False, dtype=cam.dtype))
    mw = xp.asarray(ops.interp_matrix(cam.shape[2], W, "linear", False, dtype=cam.dtype))
    up = mh @ cam @ mw.T                                           # (N, H, W)
    if relu:
        up = xp.maximum(up, 0)  # bilinear weights are >= 0, so this only removes rounding noise
    score = get_host(picked.data).astype(np.float64)
    return Attribution(unbatch(up[:, None], batched), unbatch(up, batched), unbatch(tgt, batched),
                       unbatch(score, batched), "grad_cam", low_res=unbatch(cam, batched), reduce="none",
                       extra={"layer": layer})


def guided_grad_cam(model, x, target=None, layer: str = None) -> Attribution:
    """Guided Grad-CAM: Guided Backprop times the upsampled Grad-CAM map, pixel by pixel.

    Grad-CAM says where the class is (coarse, class-discriminative), Guided Backprop which
    fine details the network responds to (sharp, hardly class-specific); their product keeps
    the details inside the class's region (Selvaraju et al.'s Guided Grad-CAM).

    Args:
        model, x, target: see the module docstring; layer: as :func:`grad_cam`.

    Returns:
        :class:`Attribution` with ``attr`` = guided gradient x Grad-CAM map (input's shape) and
        ``map`` = max over channels of its absolute value; ``low_res`` is Grad-CAM's.

    Example:
        >>> ggc = guided_grad_cam(model, x, 'tabby', layer='_blocks.15')   # doctest: +SKIP

    Reference: Selvaraju et al., "Grad-CAM", ICCV 2017, section 3.2.
    """
    cam = grad_cam(model, x, target, layer)
    gb = guided_backprop(model, x, cam.target)
    attr = gb.attr * cam.attr                     # (.., C, H, W) x (.., 1, H, W)
    return Attribution(attr, reduce_channels(attr, "max_abs"), cam.target, cam.score, "guided_grad_cam",
                       low_res=cam.low_res, extra={"layer": cam.extra["layer"]})


def _window_starts(size: int, window: int, stride: int) -> list:
    """Window offsets 0, stride, 2*stride, ... and one flush with the far edge, so every pixel is covered."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def occlusion(model, x, target=None, window=16, stride=8, baseline=0.0, batch_size: int = 16,
              progress: bool = False) -> Attribution:
    """Occlusion: how much the target logit drops when a window of the input is replaced by a baseline.

    A ``window`` (all channels, h x w pixels) slides over the image by ``stride``; each
    position's drop f(x) - f(x with the window set to the baseline) is credited to the pixels
    it covered, and each pixel's attribution is the mean drop over the windows that covered
    it (Captum's ``Occlusion`` with ``sliding_window_shapes=(C, h, w)``). The last window of
    each row and column lies flush with the image's edge, so with ``stride <= window`` every
    pixel is covered; a larger stride leaves pixels between windows that are never occluded,
    and their attribution is 0. No
    gradient is taken: the map also shows what a saturated or flat region of the model means.
    Costs one forward per window position and item, ``batch_size`` images at a time.

    Args:
        model, x, target: see the module docstring.
        window: int or (h, w), at most the image's size (default 16).
        stride: int or (h, w) (default 8).
        baseline: what a covered window shows: a number (default 0.0: black for a pixel
            model; 127.5 is mid grey for 0..255 pixels) or an array broadcastable to x.
        batch_size: occluded images per forward pass (default 16).
        progress: print a progress bar on stderr.

    Returns:
        :class:`Attribution` whose ``map`` (N, H, W) is the signed mean drop (positive: the
        region was evidence for the class), ``attr`` the same value in every channel (the
        input's shape), ``score`` f(x), and ``extra['windows']`` the number of window positions.

    Example:
        >>> occ = occlusion(model, x, 'tabby', window=32, stride=16, baseline=127.5)  # doctest: +SKIP

    Reference: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.
    """
    xb, batched = as_batch(x, model=model)
    xp = get_xp(xb)
    N, C, H, W = xb.shape
    (wh, ww), (sh, sw) = _positive(window, 2, "window"), _positive(stride, 2, "stride")
    if wh > H or ww > W:
        raise ValueError(f"window ({wh}, {ww}) is larger than the image ({H}, {W})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    base = _baseline_batch(baseline, xb, batched)
    tgt = resolve_targets(target, N)
    spots = [(y0, x0) for y0 in _window_starts(H, wh, sh) for x0 in _window_starts(W, ww, sw)]
    covered = np.zeros((H, W))
    for y0, x0 in spots:
        covered[y0:y0 + wh, x0:x0 + ww] += 1
    total = xp.zeros((N, H, W), np.float64)
    jobs = [(i, k) for i in range(N) for k in range(len(spots))]
    bar = ProgressBar(len(jobs), "occlusion") if progress else None
    with inference(model):
        logits = predict_logits(model, xb, batch_size)
        if tgt is None:
            tgt = get_host(logits.argmax(axis=1)).astype(np.int64)
        check_targets(tgt, logits.shape)
        score = get_host(logits[xp.arange(N), xp.asarray(tgt)]).astype(np.float64)
        for s in range(0, len(jobs), batch_size):
            chunk = jobs[s:s + batch_size]
            ii = np.array([i for i, _ in chunk])
            images = xb[xp.asarray(ii)]                       # a copy: fancy indexing
            for j, (i, k) in enumerate(chunk):
                y0, x0 = spots[k]
                images[j, :, y0:y0 + wh, x0:x0 + ww] = base[i, :, y0:y0 + wh, x0:x0 + ww]
            out = get_host(predict_logits(model, images)[xp.arange(len(chunk)), xp.asarray(tgt[ii])])
            for j, (i, k) in enumerate(chunk):
                y0, x0 = spots[k]
                total[i, y0:y0 + wh, x0:x0 + ww] += score[i] - float(out[j])
            if bar:
                bar(s + len(chunk))
    drop = (total / xp.asarray(np.maximum(covered, 1))).astype(xb.dtype)     # never covered: 0
    attr = xp.broadcast_to(drop[:, None], xb.shape).copy()
    return Attribution(unbatch(attr, batched), unbatch(drop, batched), unbatch(tgt, batched),
                       unbatch(score, batched), "occlusion", reduce="none",
                       extra={"window": (wh, ww), "stride": (sh, sw), "windows": len(spots)})
