"""Image parameterizations for feature visualization: the variables the optimizer changes.

A parameterization returns ``(params, image_fn)``: ``params`` is a list of Tensors (what the
optimizer updates) and ``image_fn()`` builds the image, a Tensor (N, C, H, W) in the model's
pixel units (0..255 by default, ``value_range`` otherwise), differentiably from ``params``.
``image_fn`` is an :class:`ImageFunction`, which can also *write* an image back into the
parameters (``image_fn.set_image(pixels)``): that is how regularizers that act on the image
between steps (Gaussian blur, clipping, decay) work with any parameterization.

The pixels are squashed into ``value_range`` by ``squash='sigmoid'`` (Lucid's choice: smooth,
never saturating hard) or ``'clip'`` (a straight line of the sigmoid's slope at 0, clipped;
the gradient is zero outside the range). With either, a parameter of 0 is mid-grey and one
step of Adam with lr 0.05 moves a pixel by about 0.05 * 255 / 4 = 3 pixel units.

Example:
    >>> params, image_fn = pixel_image((1, 3, 64, 64), seed=0)
    >>> image_fn().shape, float(image_fn().data.mean()) > 120
    ((1, 3, 64, 64), True)
    >>> params, image_fn = fft_image((1, 3, 64, 64))

Reference: Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017; Mordvintsev
et al., "Differentiable Image Parameterizations", Distill 2018 (Lucid's ``param.spatial``
and ``param.color``).
"""
from __future__ import annotations

import numpy as np

from fastconv import ops
from fastconv.autograd import Tensor, no_grad
from fastconv.backends import get_xp, to_numpy

__all__ = ["ImageFunction", "pixel_image", "fft_image", "COLOR_CORRELATION_SVD_SQRT"]

#: Lucid's square root of ImageNet's colour correlation matrix (columns: decorrelated axes).
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]], dtype=np.float64)
_COLOR = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


class ImageFunction:
    """``image_fn()``: the image (N, C, H, W) Tensor in ``value_range``; ``set_image`` writes one back."""

    def __init__(self, build, invert, shape, value_range, kind: str):
        self._build, self._invert = build, invert
        self.shape, self.value_range, self.kind = tuple(shape), tuple(float(v) for v in value_range), kind

    def __call__(self) -> Tensor:
        return self._build()

    def pixels(self) -> np.ndarray:
        """The current image as a float32 NumPy array (N, C, H, W), without a graph (copied off the GPU)."""
        with no_grad():
            return np.array(to_numpy(self._build().data), dtype=np.float32)

    def set_image(self, pixels) -> None:
        """Change the parameters (in place) so that the image becomes ``pixels`` (clipped into range)."""
        pixels = np.asarray(pixels, dtype=np.float64)
        if pixels.shape != self.shape:
            raise ValueError(f"set_image: expected an image of shape {self.shape}, got {pixels.shape}")
        self._invert(pixels)

    def __repr__(self) -> str:
        return f"ImageFunction({self.kind}, shape={self.shape}, value_range={self.value_range})"


# ----------------------------------------------------------------------------- squashing
def _squash(t: Tensor, squash: str, lo: float, hi: float) -> Tensor:
    if squash == "sigmoid":
        return ops.sigmoid(t) * (hi - lo) + lo
    return (t * 0.25 + 0.5).clip(0.0, 1.0) * (hi - lo) + lo


def _unsquash(x: np.ndarray, squash: str, lo: float, hi: float) -> np.ndarray:
    # keep away from the ends: the sigmoid's inverse is infinite there
    u = np.clip((x - lo) / (hi - lo), 1e-3, 1 - 1e-3)
    return np.log(u / (1 - u)) if squash == "sigmoid" else (u - 0.5) * 4.0


def _check(shape, squash, value_range):
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be (N, C, H, W) with positive sizes, got {shape}")
    if squash not in ("sigmoid", "clip"):
        raise ValueError(f"squash must be 'sigmoid' or 'clip', got {squash!r}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return shape, lo, hi


def _init_pixels(init, shape, lo, hi):
    """An initial image (N, C, H, W) from an (H, W, C) uint8 photo or an (N, C, H, W) / (C, H, W) array."""
    a = to_numpy(init)  # a CuPy array too: the image is built here and moved to its device later
    if a.dtype == np.uint8 and a.ndim in (2, 3) and a.shape[:2] == shape[2:]:
        a = (a.reshape(a.shape[:2] + (-1,)).transpose(2, 0, 1).astype(np.float64) / 255.0) * (hi - lo) + lo
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = a[None]
    try:
        return np.broadcast_to(a, shape).copy()
    except ValueError:
        raise ValueError(f"init array of shape {np.asarray(init).shape} does not fit the image shape {shape} "
                         f"(give (N, C, H, W) or (C, H, W) in pixel units, or an (H, W, C) uint8 photo)") from None


# ----------------------------------------------------------------------------- pixels
def pixel_image(shape, init="noise", scale: float = 0.01, squash: str = "sigmoid", value_range=(0.0, 255.0),
                decorrelate: bool = False, seed: int = 0, dtype=np.float32):
    """One free parameter per pixel: the plain parameterization of early feature visualization.

    Args:
        shape: (N, C, H, W) of the image.
        init: 'noise' (parameters ~ N(0, scale^2): grey with faint noise), 'zeros' (flat grey),
            or an array: an (H, W, C) uint8 photo or an (N, C, H, W) / (C, H, W) float image in
            pixel units (start from a photo, as DeepDream does).
        scale: standard deviation of the 'noise' initialisation, in parameter units.
        squash: 'sigmoid' or 'clip' (see the module docstring).
        value_range: the model's pixel range, (0, 255) for EfficientNet-Lite0, (0, 1) for the digits CNN.
        decorrelate: for 3 channels, let the parameters live in Lucid's decorrelated colour
            space (one axis per principal colour direction of ImageNet).
        seed: seeds the noise.

    Returns:
        ``([param], image_fn)``: one Tensor of ``shape`` and an :class:`ImageFunction`.

    Example:
        >>> params, image_fn = pixel_image((1, 1, 8, 8), value_range=(0, 1))
        >>> params[0].shape
        (1, 1, 8, 8)
    """
    shape, lo, hi = _check(shape, squash, value_range)
    decorrelate = _check_decorrelate(decorrelate, shape)
    if isinstance(init, str):
        if init not in ("noise", "zeros"):
            raise ValueError(f"init must be 'noise', 'zeros' or an array, got {init!r}")
        rng = np.random.default_rng(seed)
        p0 = rng.normal(0.0, scale, shape) if init == "noise" else np.zeros(shape)
    else:
        p0 = _to_params(_init_pixels(init, shape, lo, hi), squash, lo, hi, decorrelate)
    p = Tensor(p0.astype(dtype), requires_grad=True)

    def build():
        return _squash(_color(p, decorrelate), squash, lo, hi)

    def invert(pixels):
        p.data[...] = get_xp(p.data).asarray(_to_params(pixels, squash, lo, hi, decorrelate).astype(p.data.dtype))
    return [p], ImageFunction(build, invert, shape, (lo, hi), f"pixel/{squash}")


# ----------------------------------------------------------------------------- colour
def _check_decorrelate(decorrelate, shape):
    if decorrelate and shape[1] != 3:
        raise ValueError(f"decorrelate=True needs 3 colour channels, the image has {shape[1]}")
    return bool(decorrelate)


def _color(t: Tensor, decorrelate: bool) -> Tensor:
    """Map decorrelated colour coordinates to RGB: the channel axis times Lucid's matrix."""
    if not decorrelate:
        return t
    m = _COLOR.astype(t.dtype)
    return (t.transpose(0, 2, 3, 1) @ m.T).transpose(0, 3, 1, 2)


def _to_params(pixels, squash, lo, hi, decorrelate):
    u = _unsquash(pixels, squash, lo, hi)
    if decorrelate:
        u = np.einsum("ij,njhw->nihw", np.linalg.inv(_COLOR), u)
    return u


# ----------------------------------------------------------------------------- spectrum
def _freqs(h: int, w: int) -> np.ndarray:
    """|f| of every coefficient of a real 2-D FFT of an h x w image (cycles per pixel)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def _irfft_matrices(h: int, w: int):
    """Real matrices with ``irfft2(Sr + i Si) = (Ar Sr - Ai Si) Br^T - (Ar Si + Ai Sr) Bi^T``.

    ``np.fft.irfft2`` is an inverse DFT along the rows (complex, h x h) and a Hermitian
    half-spectrum inverse DFT along the columns (w x (w//2 + 1), inner columns counted twice;
    the imaginary parts of the DC and Nyquist columns are ignored, as NumPy does). Written as
    matrix products it is differentiable with the autograd's matmul.
    """
    ky = np.arange(h)
    Wy = np.exp(2j * np.pi * np.outer(ky, ky) / h) / h
    wf = w // 2 + 1
    kx = np.arange(wf)
    weight = np.full(wf, 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    Wx = np.exp(2j * np.pi * np.outer(np.arange(w), kx) / w) * weight / w
    Bi = Wx.imag.copy()
    Bi[:, 0] = 0.0
    if w % 2 == 0:
        Bi[:, -1] = 0.0
    return Wy.real, Wy.imag, Wx.real, Bi


def fft_image(shape, sd: float = 0.01, decay_power: float = 1.0, squash: str = "sigmoid",
              value_range=(0.0, 255.0), decorrelate: bool | None = None, seed: int = 0, dtype=np.float32):
    """Lucid's spectral parameterization: Fourier coefficients scaled by 1/|f|^decay_power.

    The image is ``irfft2(scale * S) / 4`` (then coloured and squashed), with ``S`` the free
    complex coefficients and ``scale = sqrt(H W) / max(|f|, 1/max(H, W))^decay_power``. Natural
    images have a 1/f spectrum; with this scaling a step of the optimizer changes low and high
    frequencies in those proportions, which is a strong prior against the high-frequency
    noise that plain pixel gradients produce (their gradient is whitened in frequency).

    Args:
        shape: (N, C, H, W).
        sd: standard deviation of the initial coefficients.
        decay_power: exponent of the 1/f scaling (1: Lucid's default; 0: plain white spectrum).
        squash, value_range, seed: as for :func:`pixel_image`.
        decorrelate: Lucid's colour decorrelation; default True for 3 channels.

    Returns:
        ``([coefficients], image_fn)``; the coefficients are one real Tensor
        (2, N, C, H, W//2 + 1) holding the real and imaginary parts.

    Example:
        >>> params, image_fn = fft_image((1, 3, 32, 32), seed=0)
        >>> params[0].shape, image_fn().shape
        ((2, 1, 3, 32, 17), (1, 3, 32, 32))
    """
    shape, lo, hi = _check(shape, squash, value_range)
    N, C, H, W = shape
    decorrelate = _check_decorrelate(C == 3 if decorrelate is None else decorrelate, shape)
    freqs = _freqs(H, W)
    scale = np.sqrt(H * W) / np.maximum(freqs, 1.0 / max(H, W)) ** decay_power
    ar, ai, br, bi = (m.astype(dtype) for m in _irfft_matrices(H, W))
    magic = 4.0  # Lucid's constant: brings the initial image's spread to about one parameter unit
    rng = np.random.default_rng(seed)
    coeffs = Tensor((rng.standard_normal((2, N, C) + freqs.shape) * sd).astype(dtype), requires_grad=True)
    scale_t = (scale / magic).astype(dtype)

    def build():
        sr = coeffs[0] * scale_t
        si = coeffs[1] * scale_t
        real = (ar @ sr - ai @ si) @ br.T - (ar @ si + ai @ sr) @ bi.T
        return _squash(_color(real, decorrelate), squash, lo, hi)

    def invert(pixels):
        u = _to_params(pixels, squash, lo, hi, decorrelate)
        spec = np.fft.rfft2(u, axes=(-2, -1)) / (scale / magic)
        xp = get_xp(coeffs.data)  # the parameters may live on the GPU (visualize moves them to the model)
        coeffs.data[0] = xp.asarray(spec.real.astype(coeffs.data.dtype))
        coeffs.data[1] = xp.asarray(spec.imag.astype(coeffs.data.dtype))
    return [coeffs], ImageFunction(build, invert, shape, (lo, hi), f"fft/{squash}")
