"""What a feature visualization maximizes: objectives on a model's activations, with algebra.

An :class:`Objective` maps the activations captured during one forward pass (a dict
``layer name -> Tensor``) and the model's output to a scalar Tensor to be *maximized*.
Objectives compose as Lucid's do: ``a + b``, ``a - b``, ``2 * a``, ``-a``, ``a / 2``, and
remember which layers they read (``layers``) and whether they need the model's output
(``needs_output``), so :func:`fastconv.interpret.render.visualize` captures only those
layers and may stop the forward pass early when the logits are not needed.

Layer names are those of ``model.named_modules()``: ``'_blocks.2'``,
``'_blocks.8._depthwise_conv'``, ``'_conv_stem'`` for EfficientNet-Lite0, ``'0'``, ``'2'``
for a Sequential.

Over a batch of images, an objective is summed over the images (each image is optimised for
its own term) unless ``batch=`` picks one image, so one run can render several objectives:
``channel('_blocks.2', 3, batch=0) + channel('_blocks.2', 7, batch=1)``.

Example:
    >>> obj = channel('_blocks.2', 3) - 0.5 * channel('_blocks.2', 4)
    >>> sorted(obj.layers), obj.needs_output
    (['_blocks.2'], False)
    >>> class_logit('robin').needs_output
    True

Reference: Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017 (Lucid's
``objectives`` module).
"""
from __future__ import annotations

from typing import Callable

from fastconv.autograd import Tensor
from fastconv.backends import get_xp, to_numpy

__all__ = ["Objective", "channel", "neuron", "class_logit", "direction", "diversity", "as_objective"]


class Objective:
    """A scalar function of captured activations and model output, to be maximized.

    Args:
        fn: ``fn(acts, output) -> Tensor`` (a single-element Tensor); ``acts`` maps layer
            names to their output Tensors, ``output`` is the model's output (None when
            ``needs_output`` is False and the forward was cut short).
        layers: names of the layers ``fn`` reads.
        needs_output: whether ``fn`` reads the model's output.
        name: a readable description (used in progress lines and captions).
    """

    def __init__(self, fn: Callable, layers=(), needs_output: bool = False, name: str = "objective"):
        self.fn = fn
        self.layers = frozenset(layers)
        self.needs_output = bool(needs_output)
        self.name = name

    def __call__(self, acts: dict, output=None) -> Tensor:
        missing = [n for n in self.layers if n not in acts]
        if missing:
            raise KeyError(f"objective {self.name!r} reads layers {missing}, which were not captured "
                           f"(captured: {sorted(acts)})")
        if self.needs_output and output is None:
            raise ValueError(f"objective {self.name!r} needs the model's output, but none was given")
        value = self.fn(acts, output)
        if isinstance(value, float):  # a constant: a Tensor on the device of what was captured
            like = output if output is not None else next(iter(acts.values()), None)
            if like is None:
                return Tensor(value)
            return Tensor(get_xp(like.data).asarray(value, dtype=like.data.dtype))
        return value

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # ----------------------------------------------------------------- algebra
    def _combine(self, other, op, symbol) -> "Objective":
        other = as_objective(other)
        return Objective(lambda a, o: op(self(a, o), other(a, o)), self.layers | other.layers,
                         self.needs_output or other.needs_output, f"{self.name} {symbol} {other.name}")

    def __add__(self, other):
        if _is_zero(other):
            return self
        return self._combine(other, lambda x, y: x + y, "+")

    def __radd__(self, other):
        # 0 + objective is the objective itself, so that sum(objectives) needs no start value
        if _is_zero(other):
            return self
        return as_objective(other) + self

    def __sub__(self, other):
        return self._combine(other, lambda x, y: x - y, "-")

    def __rsub__(self, other):
        return as_objective(other) - self

    def __mul__(self, k):
        if isinstance(k, Objective):
            return self._combine(k, lambda x, y: x * y, "*")
        k = float(k)
        return Objective(lambda a, o: self(a, o) * k, self.layers, self.needs_output, f"{k:g} * ({self.name})")

    __rmul__ = __mul__

    def __truediv__(self, k):
        return self * (1.0 / float(k))

    def __neg__(self):
        return Objective(lambda a, o: -self(a, o), self.layers, self.needs_output, f"-({self.name})")


def _is_zero(value) -> bool:
    return isinstance(value, (int, float)) and value == 0


def as_objective(value) -> Objective:
    """``value`` if it is an Objective; a number becomes a constant objective."""
    if isinstance(value, Objective):
        return value
    if isinstance(value, (int, float)):
        c = float(value)
        # a Python float, not an array: it takes the device and dtype of what it is combined with
        return Objective(lambda a, o: c, (), False, f"{c:g}")
    raise TypeError(f"cannot combine an Objective with {type(value).__name__}")


def _batch(t: Tensor, batch):
    return t if batch is None else t[batch:batch + 1]


def _check_channel(t: Tensor, layer: str, index: int) -> None:
    if t.ndim < 2 or not 0 <= index < t.shape[1]:
        raise IndexError(f"layer {layer!r} has output shape {t.shape}; channel {index} does not exist")


def channel(layer: str, index: int, batch: int | None = None) -> Objective:
    """Mean activation of channel ``index`` of ``layer`` over all positions (summed over the batch).

    Example:
        >>> channel('_blocks.8', 17).name
        "channel('_blocks.8', 17)"
    """
    index = int(index)

    def fn(acts, _):
        t = _batch(acts[layer], batch)
        _check_channel(t, layer, index)
        return t[:, index].mean(axis=tuple(range(1, t.ndim - 1))).sum() if t.ndim > 2 else t[:, index].sum()
    return Objective(fn, [layer], False, f"channel({layer!r}, {index})")


def neuron(layer: str, index: int, y: int | None = None, x: int | None = None,
           batch: int | None = None) -> Objective:
    """Activation of channel ``index`` of ``layer`` at one position, the centre of the map by default.

    Args:
        layer, index: the layer's name and the channel.
        y, x: the position in the layer's map (default: its centre, ``H // 2``, ``W // 2``).
    """
    index = int(index)

    def fn(acts, _):
        t = _batch(acts[layer], batch)
        _check_channel(t, layer, index)
        if t.ndim != 4:
            return t[:, index].sum()
        H, W = t.shape[2:]
        yy = H // 2 if y is None else int(y)
        xx = W // 2 if x is None else int(x)
        if not (0 <= yy < H and 0 <= xx < W):
            raise IndexError(f"neuron position ({yy}, {xx}) is outside the {H}x{W} map of layer {layer!r}")
        return t[:, index, yy, xx].sum()
    return Objective(fn, [layer], False, f"neuron({layer!r}, {index}, y={y}, x={x})")


def class_logit(index_or_name, batch: int | None = None) -> Objective:
    """The model's output (the logit, before softmax) for one class: an index or an ImageNet name.

    A name ('robin', 'tiger cat') is resolved by :func:`fastconv.models.label_index`.
    Maximizing the logit rather than the log-probability is what feature visualization
    usually does: the log-probability can also rise by lowering the other classes.
    """
    if isinstance(index_or_name, str):
        from fastconv.models.imagenet import label_index
        index = label_index(index_or_name)
        label = f"class_logit({index_or_name!r} = {index})"
    else:
        index = int(index_or_name)
        label = f"class_logit({index})"

    def fn(_, out):
        out = _batch(out, batch)
        if not 0 <= index < out.shape[1]:
            raise IndexError(f"the model's output has shape {out.shape}; class {index} does not exist")
        return out[:, index].sum()
    return Objective(fn, (), True, label)


def direction(layer: str, vector, batch: int | None = None) -> Objective:
    """Mean over positions of the dot product of ``layer``'s activation vectors with ``vector`` (C,)."""
    def fn(acts, _):
        t = _batch(acts[layer], batch)
        v = get_xp(t.data).asarray(to_numpy(vector), dtype=t.dtype).reshape((1, -1) + (1,) * (t.ndim - 2))
        if v.shape[1] != t.shape[1]:
            raise ValueError(f"direction has {v.shape[1]} entries, layer {layer!r} has {t.shape[1]} channels")
        return (t * v).sum(axis=1).mean(axis=tuple(range(1, t.ndim - 1))).sum() if t.ndim > 2 \
            else (t * v).sum()
    return Objective(fn, [layer], False, f"direction({layer!r})")


def diversity(layer: str) -> Objective:
    """Lucid's diversity term: how alike the batch's images are in ``layer``'s style.

    Each image's Gram matrix G_n = A_n A_n^T of its activations A_n (C x positions) is scaled
    to unit Frobenius norm; the term is sum over pairs i != j of <G_i, G_j>, divided by N.
    That is N - 1 for N identical images and lower the more their channel co-activations
    differ. *Subtract* it to render a batch of different images of one feature:
    ``channel('_blocks.8', 17) - 100 * diversity('_blocks.8')`` with ``shape=(4, 3, 128, 128)``.

    Example:
        >>> obj = channel('_blocks.8', 17) - 100 * diversity('_blocks.8')
        >>> sorted(obj.layers)
        ['_blocks.8']

    Reference: Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017 (section
    "Diversity"); Lucid's ``objectives.diversity``.
    """
    def fn(acts, _):
        t = acts[layer]
        if t.ndim < 3 or t.shape[0] < 2:
            raise ValueError(f"diversity({layer!r}) compares the images of a batch: it needs (N >= 2, C, ...) "
                             f"activations, got shape {t.shape}")
        n, c = t.shape[0], t.shape[1]
        a = t.reshape(n, c, -1)
        gram = (a @ a.transpose(0, 2, 1)).reshape(n, -1)                  # (N, C*C)
        unit = gram / ((gram * gram).sum(axis=1, keepdims=True) + 1e-20) ** 0.5
        total = unit.sum(axis=0)
        # sum over i != j of <G_i, G_j> = |sum_i G_i|^2 - sum_i |G_i|^2
        return ((total * total).sum() - (unit * unit).sum()) * (1.0 / n)
    return Objective(fn, [layer], False, f"diversity({layer!r})")
