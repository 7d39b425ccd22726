"""Pretrained models and their I/O: PyTorch weight files, ImageNet labels and preprocessing.

Importing this package needs neither torch nor numba.
"""

from __future__ import annotations

from .imagenet import (
    SAMPLE_IMAGES,
    imagenet_labels,
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
    "imagenet_preprocess",
    "imagenet_unpreprocess",
    "label_index",
    "load_torch_weights",
    "sample_image",
    "save_torch_zip",
]
