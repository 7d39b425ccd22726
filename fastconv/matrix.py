"""The convolution as a matrix: the explicit sparse C with ``conv(x).ravel() == C @ x.ravel()``.

A convolution is linear in its input, so it is a matrix; each row of C holds the kernel's
weights at the columns of the input pixels one output pixel sees (zeros elsewhere: the matrix
is sparse and banded). The transposed convolution is exactly C^T, which is where its name
comes from. Meant for small sizes: the course draws C for a 4x4 input and a 3x3 kernel.
"""
from __future__ import annotations

import numpy as np

from fastconv.geometry import conv_geometry


def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1):
    """Sparse matrix C of the convolution of an input of ``input_shape`` with ``weight``.

    Args:
        weight: (C_out, C_in/groups, K) or (C_out, C_in/groups, kh, kw) array.
        input_shape: (C_in, L) / (C_in, H, W) for one sample, or with a leading batch axis
            (N, C_in, ...) for a block-diagonal C over the batch.
        stride, padding, dilation, groups: as in :func:`fastconv.conv2d` (any padding form).

    Returns:
        ``scipy.sparse.csr_matrix`` of shape (prod(output_shape), prod(input_shape)) whose
        entries are weights: ``C @ x.ravel() == conv(x).ravel()`` and
        ``C.T @ y.ravel() == conv_transpose(y).ravel()`` (same stride / padding / dilation).

    Example:
        >>> w = np.arange(1, 10, dtype=float).reshape(1, 1, 3, 3)
        >>> C = conv_matrix(w, (1, 4, 4))
        >>> C.shape, C.nnz
        ((4, 16), 36)
    """
    import scipy.sparse as sp  # here, not at import: it costs a quarter second of every start-up

    weight = np.asarray(weight)
    if weight.ndim not in (3, 4):
        raise ValueError(f"weight must be (C_out, C_in/groups, K) or (C_out, C_in/groups, kh, kw), "
                         f"got shape {weight.shape}")
    input_shape = tuple(int(s) for s in input_shape)
    batched = len(input_shape) == weight.ndim
    if not batched and len(input_shape) != weight.ndim - 1:
        raise ValueError(f"input_shape must be (C_in, *spatial) or (N, C_in, *spatial) for weight "
                         f"shape {weight.shape}, got {input_shape}")
    x_shape = input_shape if batched else (1,) + input_shape
    g = conv_geometry(x_shape, weight.shape, stride, padding, dilation, groups)
    w4 = weight if weight.ndim == 4 else weight[:, :, None, :]
    O, Cg, KH, KW = w4.shape
    H, W = g.in_size
    Ho, Wo = g.out_size
    Og = O // g.groups

    o, yo, xo, cg, i, j = np.meshgrid(np.arange(O), np.arange(Ho), np.arange(Wo), np.arange(Cg),
                                      np.arange(KH), np.arange(KW), indexing="ij")
    yi = yo * g.stride[0] + i * g.dilation[0] - g.padding[0][0]
    xi = xo * g.stride[1] + j * g.dilation[1] - g.padding[1][0]
    c = (o // Og) * Cg + cg
    inside = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < W)
    rows = ((o * Ho + yo) * Wo + xo)[inside]
    cols = ((c * H + yi) * W + xi)[inside]
    vals = w4[o[inside], cg[inside], i[inside], j[inside]]
    one = sp.csr_matrix((vals, (rows, cols)), shape=(O * Ho * Wo, g.C_in * H * W))
    one.sum_duplicates()
    if g.N == 1:
        return one
    return sp.block_diag([one] * g.N, format="csr")
