"""Images in and out: uint8 conversion, attribution maps as heat maps, overlays, grids, PNG files.

Everything here works on plain NumPy arrays in the viewer's layout, (H, W) grey or
(H, W, 3) RGB uint8; float images in the model's layout (C, H, W) are converted by
:func:`to_uint8`. The colormaps are small lookup tables (33 anchors of matplotlib's
'inferno' and 'viridis', linearly interpolated to 256 entries, within 5/255 of the
originals), so writing a heat map needs Pillow only, not matplotlib.

Example:
    >>> import numpy as np
    >>> photo = np.zeros((4, 4, 3), np.uint8)
    >>> heat = overlay(photo, np.arange(16.0).reshape(4, 4))
    >>> heat.shape, heat.dtype
    ((4, 4, 3), dtype('uint8'))

Reference for the maps: Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", 2014.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["to_uint8", "normalize_map", "colormap", "overlay", "image_grid", "load_image", "save_image",
           "save_png", "COLORMAPS"]

_ANCHORS = {
    "inferno": [
        (0, 0, 4), (4, 3, 18), (11, 7, 36), (21, 11, 55), (33, 12, 74), (47, 10, 91), (61, 9, 101),
        (74, 12, 107), (87, 16, 110), (100, 21, 110), (113, 25, 110), (125, 30, 109), (138, 34, 106),
        (151, 39, 102), (163, 44, 97), (176, 49, 91), (188, 55, 84), (199, 62, 76), (210, 70, 68),
        (219, 80, 59), (228, 90, 49), (235, 102, 40), (241, 115, 29), (246, 128, 19), (249, 142, 9),
        (251, 157, 7), (252, 172, 17), (251, 188, 33), (249, 203, 53), (245, 219, 76), (242, 234, 105),
        (243, 246, 138), (252, 255, 164)],
    "viridis": [
        (68, 1, 84), (71, 13, 96), (72, 24, 106), (72, 35, 116), (71, 45, 123), (69, 55, 129), (66, 64, 134),
        (62, 73, 137), (59, 82, 139), (55, 91, 141), (51, 99, 141), (47, 107, 142), (44, 114, 142),
        (41, 122, 142), (38, 130, 142), (35, 137, 142), (33, 145, 140), (31, 152, 139), (31, 160, 136),
        (34, 167, 133), (40, 174, 128), (50, 182, 122), (63, 188, 115), (78, 195, 107), (94, 201, 98),
        (112, 207, 87), (132, 212, 75), (152, 216, 62), (173, 220, 48), (194, 223, 35), (216, 226, 25),
        (236, 229, 27), (253, 231, 37)],
    "gray": [(0, 0, 0), (255, 255, 255)],
}


def _lut(anchors) -> np.ndarray:
    a = np.asarray(anchors, np.float64)
    xs, ys = np.linspace(0, 1, len(a)), np.linspace(0, 1, 256)
    return np.rint(np.stack([np.interp(ys, xs, a[:, k]) for k in range(3)], 1)).astype(np.uint8)


#: name -> (256, 3) uint8 lookup table.
COLORMAPS = {name: _lut(a) for name, a in _ANCHORS.items()}


def _host(a) -> np.ndarray:
    """A NumPy array from a NumPy/CuPy array or a fastconv Tensor (copied off the GPU if needed)."""
    a = getattr(a, "data", a) if type(a).__name__ == "Tensor" else a
    get = getattr(a, "get", None)
    if callable(get) and not isinstance(a, np.ndarray):
        a = get()
    return np.asarray(a)


def _hwc(a: np.ndarray, channels_first) -> np.ndarray:
    """(C, H, W) -> (H, W, C) when the layout says so; (H, W, 1) -> (H, W)."""
    if a.ndim == 3:
        if channels_first is None:
            # a model tensor is (C, H, W) with C in {1, 3}; a photo is (H, W, C)
            channels_first = a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4)
        if channels_first:
            a = a.transpose(1, 2, 0)
        if a.shape[2] == 1:
            a = a[:, :, 0]
    elif a.ndim != 2:
        raise ValueError(f"expected an image (H, W), (H, W, C) or (C, H, W), got shape {a.shape}")
    return a


def to_uint8(image, bounds=(0, 255), channels_first=None) -> np.ndarray:
    """A viewable uint8 image (H, W) or (H, W, 3) from a float image in known units.

    Args:
        image: array or Tensor (H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4}.
        bounds: (low, high) of the image's units, mapped to 0 and 255 (values outside are
            clipped); default (0, 255) for pixel images. None stretches the image's own
            min..max (for perturbations and maps, never for photos: it changes the contrast).
        channels_first: True for (C, H, W), False for (H, W, C); None decides by the shape
            (a leading axis of 1, 3 or 4 with a last axis that is not).

    Returns:
        uint8 array (H, W) or (H, W, C), rounded.

    Example:
        >>> to_uint8(np.full((3, 2, 2), 0.5, np.float32), bounds=(0, 1))[0, 0]
        array([128, 128, 128], dtype=uint8)
    """
    a = _hwc(_host(image), channels_first)
    if a.dtype == np.uint8:
        return a.copy()
    a = a.astype(np.float64)
    if bounds is None:
        lo, hi = float(a.min()), float(a.max())
    else:
        lo, hi = (float(b) for b in bounds)
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def normalize_map(m, percentile: float = 99.5) -> np.ndarray:
    """An attribution map (H, W) as uint8 0..255, saturating at a high percentile.

    Negative values are shown by magnitude (|m|). The ``percentile`` of |m| maps to 255, so a
    handful of extreme pixels does not make the rest of the map black (the percentile
    clipping of Simonyan et al. 2014 and SmoothGrad's visualizations).

    Args:
        m: array (H, W) (or anything that squeezes to it), float or uint8.
        percentile: in (0, 100]; 100 scales by the maximum.

    Returns:
        uint8 (H, W); all zeros for an all-zero map.

    Example:
        >>> normalize_map(np.array([[0.0, 1.0], [2.0, 400.0]]), percentile=50)
        array([[  0, 170],
               [255, 255]], dtype=uint8)
    """
    a = np.abs(_host(m).astype(np.float64))
    a = np.squeeze(a) if a.ndim > 2 else a
    if a.ndim != 2:
        raise ValueError(f"normalize_map expects a map (H, W), got shape {_host(m).shape}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    hi = float(np.percentile(a, percentile))
    if hi <= 0:
        hi = float(a.max())
    if hi <= 0:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.rint(a * (255.0 / hi)), 0, 255).astype(np.uint8)


def colormap(m, cmap: str = "inferno", percentile: float = 99.5) -> np.ndarray:
    """Colour a map (H, W) with a lookup table: uint8 maps are used as is, others go through :func:`normalize_map`.

    Args:
        m: (H, W) map.
        cmap: 'inferno' (default), 'viridis' or 'gray'.
        percentile: passed to :func:`normalize_map` for float maps.

    Returns:
        uint8 (H, W, 3).

    Example:
        >>> colormap(np.array([[0, 255]], np.uint8))[0, 1]
        array([252, 255, 164], dtype=uint8)
    """
    if cmap not in COLORMAPS:
        raise ValueError(f"unknown cmap {cmap!r}; choose from {sorted(COLORMAPS)}")
    a = _host(m)
    a = a if a.dtype == np.uint8 else normalize_map(a, percentile)
    a = np.squeeze(a) if a.ndim > 2 else a
    if a.ndim != 2:
        raise ValueError(f"colormap expects a map (H, W), got shape {a.shape}")
    return COLORMAPS[cmap][a]


def _resize(a: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of a uint8 (H, W[, 3]) image to size (h, w) with Pillow."""
    from PIL import Image
    h, w = size
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((w, h), Image.Resampling.BILINEAR))


def overlay(photo, m, alpha: float = 0.5, cmap: str = "inferno", percentile: float = 99.5) -> np.ndarray:
    """Blend a coloured attribution map over a photo: ``(1 - alpha) * photo + alpha * colormap(m)``.

    Args:
        photo: uint8 (H, W, 3) or (H, W) (grey is repeated to RGB); a float (C, H, W) model
            input in pixel units 0..255 is accepted too (converted by :func:`to_uint8`).
        m: map (h, w), float (normalized by :func:`normalize_map`) or uint8; resized
            bilinearly to (H, W) when its size differs (e.g. a low-resolution Grad-CAM).
        alpha: weight of the map, in [0, 1].
        cmap: 'inferno', 'viridis' or 'gray'.

    Returns:
        uint8 (H, W, 3).

    Example:
        >>> overlay(np.zeros((8, 8, 3), np.uint8), np.ones((2, 2)), alpha=1.0)[0, 0]
        array([252, 255, 164], dtype=uint8)
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    p = to_uint8(photo)
    if p.ndim == 2:
        p = np.repeat(p[:, :, None], 3, axis=2)
    p = p[:, :, :3]
    c = colormap(m, cmap, percentile)
    if c.shape[:2] != p.shape[:2]:
        c = _resize(c, p.shape[:2])
    out = (1 - alpha) * p.astype(np.float64) + alpha * c.astype(np.float64)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def image_grid(images, ncols: int | None = None, pad: int = 2, bg: int = 255) -> np.ndarray:
    """Tile images into one uint8 picture, row by row, each cell centred in the largest image's size.

    Args:
        images: a sequence of uint8 images (H, W) or (H, W, 3) (float ones go through
            :func:`to_uint8` with pixel bounds), or an array (N, H, W[, 3]).
        ncols: columns (default: ceil(sqrt(N))).
        pad: pixels between cells and around the grid.
        bg: background grey level 0..255.

    Returns:
        uint8 (H_grid, W_grid, 3).

    Example:
        >>> image_grid([np.zeros((4, 4), np.uint8)] * 3, ncols=3, pad=1).shape
        (6, 16, 3)
    """
    imgs = [to_uint8(im) for im in images]
    if not imgs:
        raise ValueError("image_grid needs at least one image")
    imgs = [np.repeat(im[:, :, None], 3, axis=2) if im.ndim == 2 else im[:, :, :3] for im in imgs]
    n = len(imgs)
    ncols = int(np.ceil(np.sqrt(n))) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = -(-n // ncols)
    ch, cw = max(im.shape[0] for im in imgs), max(im.shape[1] for im in imgs)
    grid = np.full((nrows * ch + (nrows + 1) * pad, ncols * cw + (ncols + 1) * pad, 3), bg, np.uint8)
    for k, im in enumerate(imgs):
        r, c = divmod(k, ncols)
        top = pad + r * (ch + pad) + (ch - im.shape[0]) // 2
        left = pad + c * (cw + pad) + (cw - im.shape[1]) // 2
        grid[top:top + im.shape[0], left:left + im.shape[1]] = im
    return grid


def load_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Read an image file with Pillow.

    Args:
        path: any format Pillow reads.
        mode: 'RGB' (grey repeated, alpha dropped; (H, W, 3)) or 'L' (grey; (H, W)).

    Returns:
        uint8 array.

    Example:
        >>> load_image("cat.png").shape    # doctest: +SKIP
        (300, 451, 3)
    """
    from PIL import Image
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    with Image.open(path) as im:
        return np.asarray(im.convert(mode)).copy()


def save_image(image, path: str | os.PathLike) -> None:
    """Write a uint8 image (H, W), (H, W, 3) or (H, W, 4); the format follows the extension.

    Example:
        >>> save_image(np.zeros((4, 4, 3), np.uint8), "black.png")    # doctest: +SKIP
    """
    from PIL import Image
    arr = _host(image)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"save_image expects uint8 (H, W), (H, W, 3) or (H, W, 4), got {arr.dtype} "
                         f"{arr.shape}; convert floats with to_uint8(image, bounds) first")
    d = os.path.dirname(os.fspath(path))
    if d:
        os.makedirs(d, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)


def save_png(array, path: str | os.PathLike, bounds=None, percentile: float = 99.5) -> None:
    """Write an image or a map as PNG: uint8 as is, a float map (H, W) normalized, a float image by its bounds.

    Args:
        array: uint8 (H, W[, C]); or float (H, W), written through :func:`normalize_map`
            (unless ``bounds`` is given); or float (C, H, W) / (H, W, C), written through
            :func:`to_uint8` with ``bounds`` (None stretches min..max).
        path: destination; parent folders are created.
        bounds: the float array's (low, high) units, e.g. (0, 255) for a pixel image.
        percentile: for float maps, see :func:`normalize_map`.

    Example:
        >>> save_png(np.random.rand(8, 8), "out/map.png")    # doctest: +SKIP
    """
    a = _host(array)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        if np.squeeze(a).ndim == 2 and bounds is None:
            a = normalize_map(a, percentile)
        else:
            a = to_uint8(a, bounds)
    elif a.ndim == 3 and a.shape[2] not in (3, 4):
        a = _hwc(a, None)
    save_image(a, path)
