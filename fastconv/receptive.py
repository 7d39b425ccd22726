"""Receptive field size, jump and start of every layer of a chain of layers, per spatial axis.

For a chain of convolutions and poolings, each layer l with (dilated) kernel k_l, stride s_l
and low-side padding p_l maps the quantities of the layer before it as (Araujo, Norris & Sim,
"Computing Receptive Fields of Convolutional Neural Networks", Distill 2019)::

    r_l    = r_{l-1} + (k_l - 1) * j_{l-1}      size: input pixels seen by one unit
    j_l    = j_{l-1} * s_l                      jump: input pixels between adjacent units
    left_l = left_{l-1} - p_l * j_{l-1}         first input pixel seen by unit 0
    start_l = left_l + (r_l - 1) / 2            centre of unit 0's field

starting from the input (r, j, left) = (1, 1, 0). Unit i of layer l then sees the input pixels
``left_l + i * j_l ... left_l + i * j_l + r_l - 1`` on each axis (the range may reach into the
padding, outside the image). Elementwise layers (activations, batch norm, dropout) change
nothing; a Linear layer after Flatten, or a global pooling, sees the union of all fields.

Example:
    >>> from fastconv import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, (3, 5), padding=(1, 2)), nn.MaxPool2d(2),
    ...                     nn.Conv2d(4, 4, 3, stride=(1, 2)))
    >>> [f.size for f in receptive_field(net, (1, 1, 32, 32))]
    [(3, 5), (4, 6), (8, 10)]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastconv import nn
from fastconv.autograd import Tensor, no_grad
from fastconv.geometry import conv_geometry
from fastconv.pool import pool_geometry

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Dropout,
                nn.BatchNorm2d, nn.BatchNorm1d)


@dataclass(frozen=True)
class LayerField:
    """The receptive field of the units of one layer, one entry per spatial axis (h, w)."""

    name: str
    layer: str
    output_shape: tuple
    size: tuple
    jump: tuple
    start: tuple

    def window(self, index) -> tuple:
        """Inclusive (first, last) input pixel seen by the unit at spatial ``index`` (one int per axis)."""
        index = (index,) if np.isscalar(index) else tuple(index)
        out = []
        for i, r, j, c in zip(index, self.size, self.jump, self.start):
            lo = c - (r - 1) / 2 + i * j
            out.append((int(round(lo)), int(round(lo + r - 1))))
        return tuple(out)


class ReceptiveFields(list):
    """A list of :class:`LayerField` that prints as a table."""

    def __str__(self) -> str:
        rows = [("layer", "type", "output", "size", "jump", "start")]
        rows += [(f.name, f.layer, str(f.output_shape), str(f.size), str(f.jump),
                  str(tuple(float(s) for s in f.start))) for f in self]
        widths = [max(len(r[c]) for r in rows) for c in range(6)]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows)


def _leaf_calls(model: nn.Module, input_shape):
    """(name, module, input shape, output shape) of every leaf module, in the order they run."""
    names = {id(m): n for n, m in model.named_modules()}
    calls, handles = [], []
    for name, m in model.named_modules():
        if not m._modules:
            handles.append(m.register_forward_hook(
                lambda mod, inp, out: calls.append((names[id(mod)], mod, inp[0].shape, out.shape))))
    dtype = next((p.data.dtype for p in model.parameters()), np.float32)
    was_training = model.training
    try:
        model.eval()
        with no_grad():
            model(Tensor(np.zeros(tuple(input_shape), dtype)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return calls


def _kernel_args(m, in_shape, nd):
    """(kernel, stride, dilation, low padding) per axis of a conv or pooling layer."""
    if isinstance(m, (nn.Conv1d, nn.Conv2d)) and not isinstance(m, nn.ConvTranspose1d):
        g = conv_geometry(in_shape, m.weight.shape, m.stride, m.padding, m.dilation, m.groups)
        ax = slice(2 - nd, 2)
        return g.kernel[ax], g.stride[ax], g.dilation[ax], tuple(p[0] for p in g.padding[ax])
    k, s, p, _ = pool_geometry(in_shape, m.kernel_size, m.stride, m.padding)
    return k, s, (1, 1), p


def receptive_field(model: nn.Module, input_shape) -> ReceptiveFields:
    """Receptive field size, jump and start of every layer of ``model`` for inputs of ``input_shape``.

    The model runs once on zeros (in eval mode, without a graph) to learn every layer's input
    shape, which resolves 'same' padding; its layers must form a chain.

    Args:
        model: a Module whose leaf layers run one after the other (e.g. a Sequential).
        input_shape: (N, C, H, W) or (N, C, L).

    Returns:
        a :class:`ReceptiveFields` list with one :class:`LayerField` per layer: ``size``
        (pixels seen by one unit), ``jump`` (effective stride, in input pixels) and ``start``
        (centre of the first unit's field, in input pixel coordinates; negative or fractional
        where padding or an even kernel puts it there), each a tuple over the spatial axes.

    Raises:
        NotImplementedError for upsampling layers (transposed convolutions, Upsample), whose
        units do not all see fields of the same size; ValueError when the layers do not form a chain.

    Reference: Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
    Networks", Distill, 2019.
    """
    input_shape = tuple(int(s) for s in input_shape)
    nd = len(input_shape) - 2
    if nd not in (1, 2):
        raise ValueError(f"input_shape must be (N, C, L) or (N, C, H, W), got {input_shape}")
    r, j, left = [1] * nd, [1] * nd, [0.0] * nd
    spatial = list(input_shape[2:])  # map size of the current units (Flatten keeps the units)
    fields = ReceptiveFields()
    prev_shape = input_shape
    for name, m, in_shape, out_shape in _leaf_calls(model, input_shape):
        label = f"{name} ({type(m).__name__})"
        if tuple(in_shape) != tuple(prev_shape):
            raise ValueError(f"receptive_field: layer {label} takes shape {tuple(in_shape)} but the layer before "
                             f"it produced {tuple(prev_shape)}; the model is not a chain of layers")
        prev_shape = out_shape
        if isinstance(m, (nn.ConvTranspose1d, nn.Upsample)):
            raise NotImplementedError(f"receptive_field: layer {label} upsamples; its units do not share one "
                                      f"field size and jump (Araujo et al. treat convolutions and pooling)")
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, d, p = _kernel_args(m, in_shape, nd)
            for a in range(nd):
                left[a] -= p[a] * j[a]
                r[a] += d[a] * (k[a] - 1) * j[a]
                j[a] *= s[a]
            spatial = list(out_shape[2:])
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            out = tuple(out_shape[2:])
            if any(i % o for i, o in zip(in_shape[2:], out)):
                raise ValueError(f"receptive_field: layer {label} pools {tuple(in_shape[2:])} to {out}, which "
                                 f"gives bins of unequal sizes; only whole divisions have one field size")
            for a in range(nd):
                k = in_shape[2 + a] // out[a]
                r[a] += (k - 1) * j[a]
                j[a] *= k
            spatial = list(out)
        elif isinstance(m, nn.Linear):
            # every output unit sees every unit of the map: a kernel as large as the map
            for a in range(nd):
                r[a] += (spatial[a] - 1) * j[a]
                j[a] *= spatial[a]
                spatial[a] = 1
        elif not (isinstance(m, (nn.Flatten,) + _ELEMENTWISE) or getattr(m, "elementwise", False)):
            raise TypeError(f"receptive_field: does not know how layer {label} maps positions; it handles "
                            f"convolutions, poolings, Flatten, Linear and elementwise layers (a custom "
                            f"layer that maps each position to itself can say so with `elementwise = True`)")
        start = tuple(left[a] + (r[a] - 1) / 2 for a in range(nd))
        fields.append(LayerField(name, type(m).__name__, tuple(out_shape), tuple(r), tuple(j), start))
    return fields
