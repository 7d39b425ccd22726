"""Pretrained models and their I/O: PyTorch weight files, ImageNet labels and preprocessing.

Importing this package needs neither torch nor numba; the models load the engine on first use.
"""

from __future__ import annotations

from .imagenet import (
    SAMPLE_IMAGES,
    imagenet_labels,
    imagenet_pixels,
    imagenet_preprocess,
    imagenet_unpreprocess,
    label_index,
    sample_image,
)
from .torch_weights import (
    UnsafePickleError,
    efficientnet_lite0_weights_path,
    load_torch_weights,
    save_torch_zip,
)

__all__ = [
    "SAMPLE_IMAGES",
    "UnsafePickleError",
    "efficientnet_lite0_weights_path",
    "imagenet_labels",
    "imagenet_pixels",
    "efficientnet_lite0",
    "EfficientNetLite0",
    "digits_cnn",
    "train_digits",
    "pretrained_digits_cnn",
    "imagenet_preprocess",
    "imagenet_unpreprocess",
    "label_index",
    "load_torch_weights",
    "sample_image",
    "save_torch_zip",
]


def __getattr__(name):
    # the models import the layer graph (and so Numba); weights and labels alone do not need it
    if name in ("efficientnet_lite0", "EfficientNetLite0"):
        from . import efficientnet
        return getattr(efficientnet, name)
    if name in ("digits_cnn", "train_digits", "pretrained_digits_cnn"):
        from . import digits
        return getattr(digits, name)
    raise AttributeError(f"module 'fastconv.models' has no attribute {name!r}")
