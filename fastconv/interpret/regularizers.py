"""Regularizers for feature visualization: what keeps the image from becoming high-frequency noise.

Unregularized activation maximization produces noise: the gradient of a CNN w.r.t. its input
is computed by transposed (strided) convolutions, which overlap unevenly and leave
high-frequency, checkerboard-like patterns (Odena et al., 2016), and nothing in the objective
forbids them. Three families of remedies, all here, act at three different places of a step:

* ``penalty(image)``: a term subtracted from the objective (differentiable):
  :func:`lp_penalty` (the course's "naive regularization", L2 up to L-infinity) and
  :func:`linf_penalty`.
* ``on_gradient(grad)``: reshape the gradient before the update: :func:`laplacian_pyramid_gradient`
  (DeepDream's per-level normalization, which boosts low frequencies).
* ``after_step(image_fn, step)``: change the image between steps (Yosinski et al., 2015):
  :func:`gaussian_blur` every N steps, :func:`l2_decay`, :func:`percentile_clip`, :func:`clip_pixels`.

Every regularizer is a :class:`Regularizer` with those three hooks (each may do nothing), so
a list of them is handed to :func:`fastconv.interpret.render.visualize` in any mix.

Penalties measure the image ``u = (x - m) / (range / 2)``, where ``m`` is the mean of each
channel of the image: a penalty of 1 means "deviations as large as the whole range".

Example:
    >>> regs = [lp_penalty(2, weight=5.0), gaussian_blur(1.0, every=4)]
    >>> [r.name for r in regs]
    ['L2 penalty (weight 5)', 'Gaussian blur (sigma 1, every 4 steps)']

References: Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", 2014 (L2);
Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them", 2015
(Lp, total variation); Yosinski et al., "Understanding Neural Networks Through Deep
Visualization", 2015 (decay, blur, clipping); Mordvintsev, Olah & Tyka, "DeepDream", 2015
(Laplacian pyramid gradient normalization).
"""
from __future__ import annotations

import numpy as np

from fastconv import functional as F
from fastconv import grad as G
from fastconv.autograd import Tensor
from fastconv.backends import get_xp

__all__ = ["Regularizer", "lp_penalty", "linf_penalty", "l2_decay", "gaussian_blur",
           "laplacian_pyramid_gradient", "percentile_clip", "clip_pixels", "gaussian_kernel", "blur",
           "laplacian_pyramid", "high_frequency_share"]


class Regularizer:
    """Base class: three hooks, each a no-op unless overridden. ``name`` describes it in captions."""

    name = "regularizer"

    def penalty(self, image: Tensor, value_range) -> Tensor | None:
        """A scalar Tensor subtracted from the objective (None: no penalty)."""
        return None

    def on_gradient(self, grad: np.ndarray) -> np.ndarray:
        """The gradient of the loss w.r.t. the image parameters, reshaped before the update."""
        return grad

    def after_step(self, image_fn, step: int) -> None:
        """Called after update ``step`` (1-based): may change the image through ``image_fn.set_image``."""

    def __repr__(self) -> str:
        return self.name


def _normalized(image: Tensor, value_range) -> Tensor:
    lo, hi = value_range
    mean = image.mean(axis=(2, 3), keepdims=True)
    return (image - mean) * (2.0 / (hi - lo))


# ----------------------------------------------------------------------------- penalties
class _Lp(Regularizer):
    def __init__(self, p: float, weight: float, eps: float = 1e-6):
        if not p >= 1:
            raise ValueError(f"p must be >= 1, got {p}")
        self.p, self.weight, self.eps = float(p), float(weight), eps
        self.name = f"L{self.p:g} penalty (weight {self.weight:g})"

    def penalty(self, image, value_range):
        u = _normalized(image, value_range)
        a = (u * u + self.eps) ** (self.p / 2)  # |u|^p, smooth at 0
        return ((a.mean() + self.eps) ** (1.0 / self.p)) * self.weight


def lp_penalty(p: float = 2.0, weight: float = 1.0) -> Regularizer:
    """Penalty ``weight * (mean |u|^p)^(1/p)``: the power mean of the image's deviations.

    ``u`` is the image minus its per-channel mean, in units of half the pixel range. Taking the
    p-th root keeps the penalty in the same units for every p, and as p grows it tends to
    ``max |u|``, the L-infinity norm (:func:`linf_penalty`). L2 punishes large deviations
    everywhere (a dimmer image); high p punishes only the most extreme pixels (fewer
    saturated spots).

    Args:
        p: the exponent (>= 1); 2 is the classical L2 image prior.
        weight: multiplies the penalty; the objective is maximized minus this.
    """
    return _Lp(p, weight)


class _Linf(Regularizer):
    def __init__(self, weight: float, temperature):
        self.weight = float(weight)
        self.temperature = None if temperature is None else float(temperature)
        how = "exact max" if temperature is None else f"log-sum-exp, temperature {self.temperature:g}"
        self.name = f"L-inf penalty (weight {self.weight:g}, {how})"

    def penalty(self, image, value_range):
        a = _normalized(image, value_range).abs()
        if self.temperature is None:
            return a.max() * self.weight
        b = 1.0 / self.temperature
        m = float(a.data.max())  # a constant shift keeps exp() finite; it cancels in the gradient
        return (((a - m) * b).exp().mean().log() * self.temperature + m) * self.weight


def linf_penalty(weight: float = 1.0, temperature: float | None = None) -> Regularizer:
    """Penalty ``weight * max |u|``: the largest deviation of any pixel from its channel's mean.

    Differentiable how: with ``temperature=None`` it is the exact maximum, whose (sub)gradient
    reaches only the pixel(s) that attain it (ties share it): each step pulls in the single
    most extreme pixel. With a ``temperature`` t > 0 it is the smooth log-mean-exp
    approximation ``t * log(mean(exp(|u| / t)))`` (below the max by at most ``t log(#pixels)``),
    whose gradient spreads over all pixels near the maximum as a softmax: a gentler,
    better-behaved penalty (try t = 0.05).
    """
    if temperature is not None and not temperature > 0:
        raise ValueError(f"temperature must be > 0 or None, got {temperature}")
    return _Linf(weight, temperature)


# ----------------------------------------------------------------------------- between steps
class _Decay(Regularizer):
    def __init__(self, rate):
        if not 0 <= rate < 1:
            raise ValueError(f"decay rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.name = f"L2 decay ({self.rate:g} per step)"

    def after_step(self, image_fn, step):
        x = image_fn.pixels()
        mean = x.mean(axis=(2, 3), keepdims=True)
        image_fn.set_image(mean + (1.0 - self.rate) * (x - mean))


def l2_decay(rate: float = 0.01) -> Regularizer:
    """After every step shrink the image toward its mean colour: ``x <- m + (1 - rate) (x - m)``.

    The update form of an L2 prior (Yosinski et al., 2015, "L2 decay"): pixels that the
    objective does not keep pushing fade back to the mean.
    """
    return _Decay(rate)


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """The normalized 1-D Gaussian kernel, of radius ``ceil(3 sigma)`` by default."""
    radius = int(np.ceil(3 * sigma)) if radius is None else int(radius)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an (N, C, H, W) array, separably, with reflected borders (two fastconv.conv2d).

    A CuPy array is blurred on the GPU (and stays there).
    """
    xp = get_xp(x)
    x = xp.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
    k = gaussian_kernel(sigma).astype(dtype)
    r = (len(k) - 1) // 2
    C = x.shape[1]
    r = min(r, x.shape[2] - 1, x.shape[3] - 1)  # reflect padding needs r < size
    k = gaussian_kernel(sigma, r).astype(dtype) if r != (len(k) - 1) // 2 else k
    if r == 0:
        return x.astype(dtype)
    wy = xp.asarray(np.ascontiguousarray(np.broadcast_to(k[None, None, :, None], (C, 1, len(k), 1))))
    wx = xp.asarray(np.ascontiguousarray(np.broadcast_to(k[None, None, None, :], (C, 1, 1, len(k)))))
    y = F.conv2d(x.astype(dtype), wy, padding=((r, r), (0, 0)), groups=C, padding_mode="reflect")
    return F.conv2d(y, wx, padding=((0, 0), (r, r)), groups=C, padding_mode="reflect")


class _Blur(Regularizer):
    def __init__(self, sigma, every):
        if not sigma > 0 or every < 1:
            raise ValueError(f"need sigma > 0 and every >= 1, got sigma={sigma}, every={every}")
        self.sigma, self.every = float(sigma), int(every)
        self.name = f"Gaussian blur (sigma {self.sigma:g}, every {self.every} steps)"

    def after_step(self, image_fn, step):
        if step % self.every == 0:
            image_fn.set_image(blur(image_fn.pixels(), self.sigma))


def gaussian_blur(sigma: float = 0.5, every: int = 4) -> Regularizer:
    """Blur the image with a Gaussian of ``sigma`` pixels every ``every`` steps (Yosinski et al., 2015).

    Blurring removes the high frequencies that the gradient keeps adding; doing it only every
    few steps lets the objective rebuild the edges it really needs.
    """
    return _Blur(sigma, every)


class _PercentileClip(Regularizer):
    def __init__(self, percentile, every):
        if not 0 <= percentile < 100 or every < 1:
            raise ValueError(f"need 0 <= percentile < 100 and every >= 1, got percentile={percentile}, every={every}")
        self.percentile, self.every = float(percentile), int(every)
        self.name = f"clip pixels below the {self.percentile:g}th norm percentile (every {self.every} steps)"

    def after_step(self, image_fn, step):
        if step % self.every:
            return
        x = image_fn.pixels()
        xp = get_xp(x)
        mean = x.mean(axis=(2, 3), keepdims=True)
        norm = xp.sqrt(((x - mean) ** 2).sum(axis=1, keepdims=True))                 # (N, 1, H, W)
        cut = xp.percentile(norm.reshape(norm.shape[0], -1), self.percentile, axis=1).reshape(-1, 1, 1, 1)
        image_fn.set_image(xp.where(norm < cut, mean, x))


def percentile_clip(percentile: float = 20.0, every: int = 1) -> Regularizer:
    """Every ``every`` steps, set the pixels of smallest norm to the image's mean colour.

    A pixel's norm is the length of its deviation from the mean colour, over channels; the
    pixels below the ``percentile``-th percentile of that norm, per image, are reset (Yosinski et
    al., 2015, "clipping pixels with small norm"): the faint background the objective does not
    need fades, and what remains is the part of the image that drives the feature.

    Example:
        >>> percentile_clip(30).name
        'clip pixels below the 30th norm percentile (every 1 steps)'
    """
    return _PercentileClip(percentile, every)


class _Clip(Regularizer):
    def __init__(self, bounds):
        self.bounds = None if bounds is None else tuple(float(b) for b in bounds)
        self.name = f"clip pixels to {self.bounds}"

    def after_step(self, image_fn, step):
        lo, hi = self.bounds if self.bounds is not None else image_fn.value_range
        image_fn.set_image(np.clip(image_fn.pixels(), lo, hi))


def clip_pixels(bounds=None) -> Regularizer:
    """After every step clip the image to ``bounds`` (low, high) in pixel units (default: the value range).

    With ``squash='clip'`` this also pulls back parameters that drifted beyond the range (where
    their gradient is zero); with tighter bounds, e.g. (20, 235), it keeps the image off the
    saturated extremes.
    """
    return _Clip(bounds)


# ----------------------------------------------------------------------------- pyramid
_B5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0  # binomial approximation of a Gaussian


def _pyr_kernel(C, dtype, xp=np):
    return xp.asarray(np.ascontiguousarray(np.broadcast_to(_B5.astype(dtype), (C, 1, 5, 5))))


def laplacian_pyramid(x: np.ndarray, levels: int = 4):
    """Split (N, C, H, W) into ``levels`` band-pass images, finest first, plus the low-pass residual last.

    One level: ``lo = blur-and-subsample(x)`` (a 5x5 binomial kernel, stride 2, SAME padding),
    ``hi = x - upsample(lo)``, where the upsampling is the transposed convolution of the
    same kernel times 4 (exactly ``fastconv.grad.conv2d_input``). Summing the levels back
    (:func:`merge`: upsample and add, coarsest first) returns ``x`` exactly. A CuPy array is
    split on the GPU.
    """
    xp = get_xp(x)
    x = xp.asarray(x)
    C = x.shape[1]
    k = _pyr_kernel(C, x.dtype, xp)
    out = []
    for _ in range(levels - 1):
        if min(x.shape[2:]) < 2:
            break
        lo = F.conv2d(x, k, stride=2, padding="same", groups=C)
        up = G.conv2d_input(x.shape, k * 4, lo, stride=2, padding="same", groups=C)
        out.append(x - up)
        x = lo
    out.append(x)
    return out


def merge(levels) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid`."""
    x = levels[-1]
    for hi in reversed(levels[:-1]):
        C = hi.shape[1]
        k = _pyr_kernel(C, hi.dtype, get_xp(hi))
        x = hi + G.conv2d_input(hi.shape, k * 4, x, stride=2, padding="same", groups=C)
    return x


class _Pyramid(Regularizer):
    def __init__(self, levels, eps):
        self.levels, self.eps = int(levels), float(eps)
        self.name = f"Laplacian pyramid gradient ({self.levels} levels)"

    def on_gradient(self, grad):
        if grad.ndim != 4:
            raise ValueError(f"laplacian_pyramid_gradient needs an image-shaped (N, C, H, W) parameter "
                             f"(pixel_image), got a gradient of shape {grad.shape}")
        bands = laplacian_pyramid(grad, self.levels)
        bands = [b / max(float(get_xp(b).sqrt((b * b).mean())), self.eps) for b in bands]
        return merge(bands)


def laplacian_pyramid_gradient(levels: int = 4, eps: float = 1e-12) -> Regularizer:
    """Normalize the gradient per Laplacian-pyramid level, DeepDream's ``lap_normalize``.

    The gradient is split into ``levels`` frequency bands (:func:`laplacian_pyramid`); each
    band is divided by its RMS, and the bands are added back. The raw gradient has most of its
    energy in the finest band (the noise of the transposed convolutions); after the
    normalization every octave contributes equally, so coarse structure grows as fast as
    fine detail. Needs an image-shaped parameter (:func:`~fastconv.interpret.param.pixel_image`).
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    return _Pyramid(levels, eps)


# ----------------------------------------------------------------------------- measuring
def high_frequency_share(image, cutoff: float = 0.5) -> float:
    """Share of the spectral energy of the mean-removed image above ``cutoff`` x Nyquist.

    ``image`` is (H, W), (H, W, C), (C, H, W) or (N, C, H, W) (channels-first when the first
    axis is 1 or 3 and the last is not). The radial frequency is ``sqrt(fy^2 + fx^2)`` in
    cycles per pixel; Nyquist is 0.5. White noise puts about 80% of its energy above half
    Nyquist; photos a few percent.
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        a = a[None, None]
    elif a.ndim == 3:
        a = a.transpose(2, 0, 1)[None] if a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3) else a[None]
    a = a - a.mean(axis=(2, 3), keepdims=True)
    H, W = a.shape[2:]
    power = np.abs(np.fft.fft2(a)) ** 2
    f = np.sqrt(np.fft.fftfreq(H)[:, None] ** 2 + np.fft.fftfreq(W)[None, :] ** 2)
    total = power.sum()
    return float(power[..., f > cutoff * 0.5].sum() / total) if total > 0 else 0.0
