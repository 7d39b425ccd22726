"""Float64 reference convolutions written independently of fastconv's kernels and geometry.

Both references work tap by tap on an explicitly padded float64 copy: a forward convolution
is a sum over taps (i, j) of a strided window of the input times w[:, :, i, j]; a transposed
convolution scatters every input pixel through every tap into a large enough canvas and crops.
"""
from __future__ import annotations

import numpy as np


def same_pairs(in_size, kernel, stride, dilation):
    """TensorFlow SAME, written out as in TF's documentation."""
    out = []
    for n, k, s, d in zip(in_size, kernel, stride, dilation):
        k_eff = (k - 1) * d + 1
        total = max((-(-n // s) - 1) * s + k_eff - n, 0)
        out.append((total // 2, total - total // 2))
    return out


def ref_conv(x, w, stride, pads, dilation, groups):
    """x (N, C, *sp), w (O, C/g, *k); stride, dilation per axis; pads per axis (lo, hi)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    k = w.shape[2:]
    out_sp = [(xp.shape[2 + a] - dilation[a] * (k[a] - 1) - 1) // stride[a] + 1 for a in range(nd)]
    y = np.zeros((N, O) + tuple(out_sp))
    Og = O // groups
    for tap in np.ndindex(*k):
        sl = tuple(slice(tap[a] * dilation[a], tap[a] * dilation[a] + (out_sp[a] - 1) * stride[a] + 1, stride[a])
                   for a in range(nd))
        win = xp[(slice(None), slice(None)) + sl]
        for g in range(groups):
            wg = w[(slice(g * Og, (g + 1) * Og), slice(None)) + tap]           # (Og, Cg)
            y[:, g * Og:(g + 1) * Og] += np.einsum("oc,nc...->no...", wg, win[:, g * Cg:(g + 1) * Cg])
    return y


def ref_conv_transpose(x, w, stride, pads, output_padding, dilation, groups):
    """x (N, Cin, *sp), w (Cin, Cout/g, *k) as in PyTorch."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    N, Cin = x.shape[:2]
    Cog = w.shape[1]
    k = w.shape[2:]
    Cig = Cin // groups
    full = [(x.shape[2 + a] - 1) * stride[a] + dilation[a] * (k[a] - 1) + 1 + output_padding[a] for a in range(nd)]
    canvas = np.zeros((N, Cog * groups) + tuple(full))
    for tap in np.ndindex(*k):
        sl = tuple(slice(tap[a] * dilation[a], tap[a] * dilation[a] + (x.shape[2 + a] - 1) * stride[a] + 1, stride[a])
                   for a in range(nd))
        for g in range(groups):
            wg = w[(slice(g * Cig, (g + 1) * Cig), slice(None)) + tap]         # (Cig, Cog)
            canvas[(slice(None), slice(g * Cog, (g + 1) * Cog)) + sl] += np.einsum(
                "co,nc...->no...", wg, x[:, g * Cig:(g + 1) * Cig])
    out = [full[a] - pads[a][0] - pads[a][1] for a in range(nd)]
    crop = tuple(slice(pads[a][0], pads[a][0] + out[a]) for a in range(nd))
    return canvas[(slice(None), slice(None)) + crop]


def rel_err(a, b) -> float:
    """max |a - b| / max |b| (0 when both are zero)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = np.abs(b).max() if b.size else 0.0
    diff = np.abs(a - b).max() if b.size else 0.0
    return float(diff / scale) if scale else float(diff)
