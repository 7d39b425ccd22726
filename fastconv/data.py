"""Small real data sets that ship offline, as float32 NCHW arrays ready for a CNN.

Example:
    >>> d = load_digits()
    >>> d.x_train.shape, d.x_train.dtype, d.y_train.dtype
    ((1438, 1, 8, 8), dtype('float32'), dtype('int64'))
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Split(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(split_seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), split per class.

    Pixels are scaled from 0..16 to [0, 1]. The split is stratified: every class gives the same
    fraction of its images to the test set, drawn by ``split_seed``.

    Args:
        split_seed: seed of the train/test split.
        test_fraction: share of each class held out.

    Returns:
        ``Split(x_train, y_train, x_test, y_test)``; x float32 (N, 1, 8, 8), y int64 (N,).

    Raises:
        ImportError when scikit-learn (an optional dependency) is missing.

    Reference: Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI ML repository, 1998.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        raise ImportError("load_digits needs scikit-learn, which ships the digits data set: "
                          "pip install 'fastconv[demos]' (or pip install scikit-learn)") from exc
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = _sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[:int(round(test_fraction * len(idx)))]] = True
    return Split(x[~test], y[~test], x[test], y[test])
