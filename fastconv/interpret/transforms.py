"""Random, differentiable image transformations: for feature visualization and Expectation Over Transformation.

A transform is a callable ``t(x, rng) -> Tensor``: ``x`` is a Tensor (N, C, H, W) (an array is
wrapped), ``rng`` a ``numpy.random.Generator`` (or an int seed), and the result is
differentiable w.r.t. ``x``. Every item of the batch draws its own random parameters, so one
call on ``samples`` copies of an image is ``samples`` independent draws of the transformation
(what EOT averages over). Transforms chain with :func:`compose` and print as the expression
that built them (``repr``), so a run's settings can be logged as text.

The geometric ones (:func:`random_scale`, :func:`random_rotate`, :func:`translate`,
:func:`random_affine`) resample through one op, :func:`affine_warp`: bilinear interpolation
written as a sparse matrix M (one row per output pixel, at most 4 non-zeros), so the forward
is ``M x`` and the backward is exactly ``M^T g``, the adjoint.

A transformation *distribution* (the T of EOT) is nothing more than a transform plus the seed
of the generator that drives it: ``(compose(random_rotate(15), translate(10)), seed=0)``.
Calling it with ``np.random.default_rng(seed)`` on inputs of the same shape always draws the
same transformations, which is how :func:`fastconv.interpret.eot_evaluate` scores two
adversarial images under identical conditions.

Example:
    >>> import numpy as np
    >>> from fastconv.autograd import Tensor
    >>> t = compose(pad(4, 'reflect'), jitter(8), random_rotate(10), brightness(20), gaussian_noise(5))
    >>> t
    compose(pad(4, mode='reflect'), jitter(8), random_rotate(10), brightness(20), gaussian_noise(5))
    >>> x = Tensor(np.random.rand(2, 3, 32, 32).astype(np.float32) * 255, requires_grad=True)
    >>> t(x, np.random.default_rng(0)).shape
    (2, 3, 32, 32)

References: Mordvintsev, Olah & Tyka, "Inceptionism", 2015, and Olah, Mordvintsev & Schubert,
"Feature Visualization", Distill 2017 (Lucid's transforms); Athalye, Engstrom, Ilyas & Kwok,
"Synthesizing Robust Adversarial Examples", ICML 2018 (arXiv 1707.07397, EOT).
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.sparse as sp

from fastconv import ops
from fastconv.autograd import Tensor, concatenate
from fastconv.backends import get_xp

__all__ = ["Transform", "compose", "jitter", "pad", "random_scale", "random_rotate", "translate", "random_affine",
           "brightness", "gaussian_noise", "clip", "identity", "affine_warp", "affine_matrix", "warp_matrix"]


class Transform:
    """A random transformation ``t(x, rng) -> Tensor`` with a readable ``repr``.

    Args:
        fn: ``fn(x: Tensor (N, C, H, W), rng: numpy.random.Generator) -> Tensor``.
        text: the expression that rebuilds it, shown by ``repr``.
    """

    def __init__(self, fn, text: str):
        self.fn, self.text = fn, text

    def __call__(self, x, rng=None) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 4:
            raise ValueError(f"{self.text}: x must be (N, C, H, W), got shape {x.shape}")
        if rng is None or isinstance(rng, numbers.Integral):
            rng = np.random.default_rng(rng)
        elif not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.text}: rng must be a numpy.random.Generator or an int seed, got "
                            f"{type(rng).__name__}")
        return self.fn(x, rng)

    def __repr__(self) -> str:
        return self.text


def _num(v) -> str:
    return repr(v) if not isinstance(v, float) or v != int(v) else str(int(v))


def compose(*transforms) -> Transform:
    """Apply transforms left to right, drawing from one generator in that order.

    Example:
        >>> compose(jitter(2), compose(brightness(0.1), gaussian_noise(0.02)))
        compose(jitter(2), brightness(0.1), gaussian_noise(0.02))
    """
    flat = []
    for t in transforms:
        if not callable(t):
            raise TypeError(f"compose takes transforms (callables t(x, rng)), got {type(t).__name__}")
        flat.extend(t.parts if isinstance(t, Transform) and hasattr(t, "parts") else [t])

    def fn(x, rng):
        for t in flat:
            x = t(x, rng)
        return x
    out = Transform(fn, "compose(" + ", ".join(repr(t) for t in flat) + ")")
    out.parts = flat
    return out


def identity() -> Transform:
    """The transform that returns its input (a neutral element for :func:`compose`)."""
    return Transform(lambda x, rng: x, "identity()")


# --------------------------------------------------------------------------- the warp op
def warp_matrix(matrix, in_shape, out_shape=None, padding_mode: str = "zeros", dtype=np.float64):
    """The sparse (Ho*Wo, H*W) matrix of bilinear resampling along an affine map.

    Coordinates are pixel centres, x = column, y = row, origin at the top-left pixel:
    output pixel (x_o, y_o) samples the input at ``matrix @ (x_o, y_o, 1)`` (an inverse,
    output-to-input map, as ``scipy.ndimage.affine_transform`` and OpenCV's
    ``WARP_INVERSE_MAP`` use).

    Args:
        matrix: (2, 3) array.
        in_shape: (H, W); out_shape: (Ho, Wo), default in_shape.
        padding_mode: 'zeros' (taps outside the image contribute 0) or 'border' (sample
            coordinates are clamped into the image: the edge is replicated).

    Returns:
        scipy.sparse.csr_matrix with at most 4 non-zeros per row, rows summing to 1 inside.
    """
    H, W = in_shape
    Ho, Wo = in_shape if out_shape is None else out_shape
    a = np.asarray(matrix, np.float64)
    yo, xo = np.mgrid[0:Ho, 0:Wo]
    xo, yo = xo.ravel().astype(np.float64), yo.ravel().astype(np.float64)
    xs = a[0, 0] * xo + a[0, 1] * yo + a[0, 2]
    ys = a[1, 0] * xo + a[1, 1] * yo + a[1, 2]
    if padding_mode == "border":
        xs, ys = np.clip(xs, 0, W - 1), np.clip(ys, 0, H - 1)
    elif padding_mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    rows = np.arange(Ho * Wo)
    r, c, v = [], [], []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yi, xi = y0 + dy, x0 + dx
        ok = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < W) & (w != 0)
        r.append(rows[ok])
        c.append(yi[ok] * W + xi[ok])
        v.append(w[ok])
    return sp.csr_matrix((np.concatenate(v).astype(dtype), (np.concatenate(r), np.concatenate(c))),
                         shape=(Ho * Wo, H * W))


def _sparse_for(m, xp):
    if xp is np:
        return m
    import cupyx.scipy.sparse as csp  # only for CuPy inputs
    return csp.csr_matrix(m)


def affine_warp(x, matrix, padding_mode: str = "zeros", out_size=None) -> Tensor:
    """Bilinear resampling of x (N, C, H, W) along affine maps; differentiable w.r.t. x with the exact adjoint.

    Per item n the op builds the sparse interpolation matrix M_n (:func:`warp_matrix`) and
    returns ``M_n x_n`` for every channel; the backward returns ``M_n^T g_n``, so
    ``<warp(x), v> = <x, warp^T(v)>`` holds to rounding. The matrix is not differentiated
    (the transforms draw it at random).

    Args:
        x: Tensor or array (N, C, H, W), float32 or float64 (NumPy or CuPy).
        matrix: (2, 3) for every item or (N, 2, 3) per item: output-to-input maps in pixel
            coordinates (x = column, y = row; see :func:`warp_matrix`, :func:`affine_matrix`).
        padding_mode: 'zeros' (default, as ``grid_sample``) or 'border'.
        out_size: (Ho, Wo), default (H, W).

    Returns:
        Tensor (N, C, Ho, Wo), x's dtype.

    Example:
        >>> x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
        >>> shift = np.array([[1.0, 0, 1], [0, 1, 0]])      # sample one column to the right
        >>> affine_warp(x, shift).data[0, 0, 0]
        array([1., 2., 3., 0.])
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 4:
        raise ValueError(f"affine_warp: x must be (N, C, H, W), got shape {x.shape}")
    N, C, H, W = x.shape
    mats = np.asarray(matrix, np.float64)
    if mats.shape == (2, 3):
        mats = np.broadcast_to(mats, (N, 2, 3))
    if mats.shape != (N, 2, 3):
        raise ValueError(f"affine_warp: matrix must be (2, 3) or ({N}, 2, 3) for x of shape {x.shape}, "
                         f"got {mats.shape}")
    Ho, Wo = (H, W) if out_size is None else tuple(int(v) for v in out_size)
    xp = get_xp(x.data)
    ms = [_sparse_for(warp_matrix(m, (H, W), (Ho, Wo), padding_mode, x.dtype), xp) for m in mats]
    xd = x.data
    out = xp.stack([(ms[n] @ xd[n].reshape(C, H * W).T).T for n in range(N)]).reshape(N, C, Ho, Wo)

    def backward(g):
        return (xp.stack([(ms[n].T @ g[n].reshape(C, Ho * Wo).T).T for n in range(N)]).reshape(N, C, H, W),)
    return Tensor._make(xp.ascontiguousarray(out.astype(x.dtype, copy=False)), (x,), backward, "affine_warp")


def affine_matrix(shape, angle: float = 0.0, scale: float = 1.0, translate=(0.0, 0.0), center=None) -> np.ndarray:
    """The (2, 3) output-to-input map that rotates, scales and shifts an image's content.

    The content is rotated by ``angle`` degrees counter-clockwise as seen on screen, scaled by
    ``scale`` (> 1 zooms in) about ``center``, then moved by ``translate`` = (dx right,
    dy down) pixels: p_out = c + t + s R(angle) (p_in - c); the returned matrix is its
    inverse, what :func:`affine_warp` takes.

    Args:
        shape: (H, W) of the image.
        center: (x, y), default the image centre ((W - 1) / 2, (H - 1) / 2).

    Example:
        >>> affine_matrix((5, 5), translate=(1, 0))
        array([[ 1.,  0., -1.],
               [ 0.,  1.,  0.]])
    """
    H, W = shape
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    cx, cy = ((W - 1) / 2, (H - 1) / 2) if center is None else center
    th = math.radians(angle)
    # R(-angle) / scale in (x, y-down) coordinates: the inverse rotation, then the inverse zoom
    a = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]]) / scale
    c = np.array([cx, cy])
    t = np.asarray(translate, np.float64)
    return np.concatenate([a, (c - a @ (c + t))[:, None]], axis=1) + 0.0  # + 0.0: no negative zeros


# --------------------------------------------------------------------------- transforms
def _draw(spec, n, rng, name):
    """n draws: a number d -> U(-d, d); a sequence -> uniform choice among its values."""
    if isinstance(spec, numbers.Real):
        return rng.uniform(-float(spec), float(spec), n)
    vals = np.asarray(spec, np.float64)
    if vals.ndim != 1 or not len(vals):
        raise ValueError(f"{name} must be a number or a non-empty sequence of values, got {spec!r}")
    return vals[rng.integers(0, len(vals), n)]


def _warp_transform(draw, text, padding_mode):
    if padding_mode not in ("zeros", "border"):
        raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")

    def fn(x, rng):
        N, _, H, W = x.shape
        mats = np.stack([affine_matrix((H, W), *p) for p in draw(N, rng)])
        return affine_warp(x, mats, padding_mode)
    suffix = "" if padding_mode == "border" else f", padding_mode={padding_mode!r}"
    return Transform(fn, text[:-1] + suffix + ")")


def jitter(pixels: int) -> Transform:
    """Random crop that removes ``pixels`` rows and columns (Lucid's jitter): output (H - d, W - d).

    Each item's offsets are drawn from 0..pixels. Pair with :func:`pad` to keep the size.

    Example:
        >>> jitter(8)(Tensor(np.zeros((1, 3, 32, 32))), np.random.default_rng(0)).shape
        (1, 3, 24, 24)
    """
    d = int(pixels)
    if d < 0:
        raise ValueError(f"jitter pixels must be >= 0, got {pixels}")

    def fn(x, rng):
        N, _, H, W = x.shape
        if d >= min(H, W):
            raise ValueError(f"jitter({d}) would crop x of shape {x.shape} to nothing")
        if d == 0:
            return x
        oy, ox = rng.integers(0, d + 1, N), rng.integers(0, d + 1, N)
        return concatenate([x[n:n + 1, :, oy[n]:oy[n] + H - d, ox[n]:ox[n] + W - d] for n in range(N)], axis=0)
    return Transform(fn, f"jitter({d})")


def pad(n: int, mode: str = "reflect", value: float = 0.0) -> Transform:
    """Pad every side by ``n`` pixels: mode 'reflect', 'replicate' or 'constant' (filled with ``value``).

    Lucid pads with a constant 0.5 (mid-grey of a 0..1 image) so that jitter does not reveal
    the border; for pixel images use value=127.5, or 'reflect'.

    Example:
        >>> pad(2, 'constant', 0.5)(Tensor(np.zeros((1, 1, 2, 2))), 0).data[0, 0, 0]
        array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"pad n must be >= 0, got {n}")
    if mode not in ("reflect", "replicate", "constant"):
        raise ValueError(f"pad mode must be 'reflect', 'replicate' or 'constant', got {mode!r}")
    pairs = [(n, n), (n, n)]

    def fn(x, rng):
        if mode != "constant":
            return ops.pad(x, pairs, mode)
        y = ops.pad(x, pairs, "zeros")
        if value == 0:
            return y
        xp = get_xp(x.data)
        border = 1 - ops.pad(Tensor(xp.ones((1, 1) + x.shape[2:], x.dtype)), pairs, "zeros").data
        return y + border * x.dtype.type(value)
    text = f"pad({n}, mode={mode!r}" + (f", value={_num(value)})" if mode == "constant" else ")")
    return Transform(fn, text)


def random_scale(scales=None, interval=None, padding_mode: str = "border") -> Transform:
    """Zoom each item about its centre by a random factor, keeping its size (bilinear :func:`affine_warp`).

    Args:
        scales: a sequence of factors, one chosen uniformly per item (Lucid's style), or
        interval: (low, high), a factor drawn uniformly from it. Give exactly one.
        padding_mode: 'border' (default: the edge is replicated where the zoom-out uncovers
            it, so no black frame appears that the model or an attack could key on) or 'zeros'.

    Example:
        >>> random_scale(interval=(0.9, 1.1))
        random_scale(interval=(0.9, 1.1))
    """
    if (scales is None) == (interval is None):
        raise ValueError("random_scale: give exactly one of scales (a sequence of factors) and interval=(low, high)")
    if interval is not None:
        lo, hi = (float(v) for v in interval)
        if not 0 < lo <= hi:
            raise ValueError(f"random_scale interval must satisfy 0 < low <= high, got {interval}")
        text = f"random_scale(interval=({_num(lo)}, {_num(hi)}))"
        pick = lambda n, rng: rng.uniform(lo, hi, n)  # noqa: E731
    else:
        vals = np.asarray(scales, np.float64).ravel()
        if not len(vals) or (vals <= 0).any():
            raise ValueError(f"random_scale scales must be positive factors, got {scales!r}")
        text = f"random_scale({[_num(float(v)) for v in vals]})".replace("'", "")
        pick = lambda n, rng: vals[rng.integers(0, len(vals), n)]  # noqa: E731
    return _warp_transform(lambda n, rng: [(0.0, s) for s in pick(n, rng)], text, padding_mode)


def random_rotate(degrees, padding_mode: str = "border") -> Transform:
    """Rotate each item about its centre: ``degrees`` a number d (uniform in [-d, d]) or a sequence of angles.

    Example:
        >>> random_rotate(15)
        random_rotate(15)
    """
    _draw(degrees, 1, np.random.default_rng(0), "random_rotate degrees")  # validate now, not at first call
    text = f"random_rotate({_num(degrees) if isinstance(degrees, numbers.Real) else list(degrees)})"
    return _warp_transform(lambda n, rng: [(a,) for a in _draw(degrees, n, rng, "degrees")], text, padding_mode)


def translate(max_pixels: float, padding_mode: str = "border") -> Transform:
    """Shift each item by (dx, dy), each uniform in [-max_pixels, max_pixels] (sub-pixel, bilinear).

    Example:
        >>> translate(10)
        translate(10)
    """
    if max_pixels < 0:
        raise ValueError(f"translate max_pixels must be >= 0, got {max_pixels}")
    m = float(max_pixels)

    def draw(n, rng):
        t = rng.uniform(-m, m, (n, 2))
        return [(0.0, 1.0, (dx, dy)) for dx, dy in t]
    return _warp_transform(draw, f"translate({_num(max_pixels)})", padding_mode)


def random_affine(degrees: float = 0.0, scale=(1.0, 1.0), translate: float = 0.0,
                  padding_mode: str = "border") -> Transform:
    """Rotation, zoom and shift in ONE bilinear resampling (one blur instead of three chained).

    Args:
        degrees: angle uniform in [-degrees, degrees].
        scale: (low, high): factor uniform in it.
        translate: dx, dy each uniform in [-translate, translate] pixels.
        padding_mode: 'border' (default) or 'zeros'.

    Example:
        >>> random_affine(15, (0.9, 1.1), 10)
        random_affine(15, (0.9, 1.1), 10)
    """
    lo, hi = (float(v) for v in scale)
    if not 0 < lo <= hi:
        raise ValueError(f"random_affine scale must satisfy 0 < low <= high, got {scale}")
    if degrees < 0 or translate < 0:
        raise ValueError(f"random_affine degrees and translate must be >= 0, got {degrees}, {translate}")
    d, m = float(degrees), float(translate)

    def draw(n, rng):
        ang, s, t = rng.uniform(-d, d, n), rng.uniform(lo, hi, n), rng.uniform(-m, m, (n, 2))
        return [(ang[i], s[i], tuple(t[i])) for i in range(n)]
    return _warp_transform(draw, f"random_affine({_num(degrees)}, ({_num(lo)}, {_num(hi)}), {_num(translate)})",
                           padding_mode)


def brightness(max_delta: float) -> Transform:
    """Add one random offset per item, uniform in [-max_delta, max_delta], in the image's own units.

    For pixel images 0..255, brightness(20) shifts by up to 20 levels. No clipping: add
    :func:`clip` after it to keep the valid range.

    Example:
        >>> brightness(20)
        brightness(20)
    """
    if max_delta < 0:
        raise ValueError(f"brightness max_delta must be >= 0, got {max_delta}")

    def fn(x, rng):
        xp = get_xp(x.data)
        delta = rng.uniform(-max_delta, max_delta, (x.shape[0], 1, 1, 1)).astype(x.dtype)
        return x + xp.asarray(delta)
    return Transform(fn, f"brightness({_num(max_delta)})")


def gaussian_noise(std: float) -> Transform:
    """Add i.i.d. Gaussian noise of standard deviation ``std`` (image units) to every value.

    Example:
        >>> gaussian_noise(5)
        gaussian_noise(5)
    """
    if std < 0:
        raise ValueError(f"gaussian_noise std must be >= 0, got {std}")

    def fn(x, rng):
        xp = get_xp(x.data)
        return x + xp.asarray((std * rng.standard_normal(x.shape)).astype(x.dtype))
    return Transform(fn, f"gaussian_noise({_num(std)})")


def clip(lo: float, hi: float) -> Transform:
    """Clamp values into [lo, hi] (the gradient passes where the value was inside).

    Example:
        >>> clip(0, 255)
        clip(0, 255)
    """
    if hi < lo:
        raise ValueError(f"clip needs lo <= hi, got {lo}, {hi}")
    return Transform(lambda x, rng: x.clip(lo, hi), f"clip({_num(lo)}, {_num(hi)})")
