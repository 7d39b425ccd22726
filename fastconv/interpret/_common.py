"""Plumbing shared by attribution and attacks: inputs, targets, the model's mode, class gradients.

Private: the public functions in saliency.py and adversarial.py validate their own arguments
through these helpers so that every error names the argument and the shapes the same way.
"""
from __future__ import annotations

import numbers

import numpy as np

from fastconv import nn, ops
from fastconv.autograd import Tensor, no_grad
from fastconv.backends import get_xp, is_cupy_array


def model_device(model) -> str:
    """'cuda' when the model's first parameter is a CuPy array, else 'cpu' (also for a model without parameters)."""
    for p in (model.parameters() if hasattr(model, "parameters") else []):
        return "cuda" if is_cupy_array(p.data) else "cpu"
    return "cpu"


def model_dtype(model):
    """The dtype of the model's first floating parameter (float32 when it has none)."""
    for p in (model.parameters() if hasattr(model, "parameters") else []):
        if p.data.dtype.kind == "f":
            return p.data.dtype
    return np.dtype(np.float32)


def as_batch(x, name: str = "x", model=None):
    """(array (N, C, H, W) float, batched?) from an array or Tensor (N, C, H, W) or (C, H, W).

    Returns a fresh copy, so nothing done to it can reach the caller's array; integer images
    (uint8 photos) take the model's dtype (float32 without a model), float dtypes are kept.
    """
    data = x.data if isinstance(x, Tensor) else x
    if not (isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__")):
        data = np.asarray(data)
    if data.ndim not in (3, 4):
        raise ValueError(f"{name} must be (N, C, H, W) or (C, H, W), got shape {tuple(data.shape)}")
    if data.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {data.dtype}")
    out = data.astype(data.dtype if data.dtype.kind == "f" else model_dtype(model), copy=True)
    batched = data.ndim == 4
    return (out if batched else out[None]), batched


def unbatch(a, batched: bool):
    return a if batched or a is None else a[0]


def resolve_targets(target, n: int, name: str = "target"):
    """Class indices (N,) int64 from an int, an ImageNet name, or a sequence of them (one per item).

    ImageNet names resolve through :func:`fastconv.models.imagenet.label_index` (imported only
    when a name is given). Range checks against the model's class count happen in
    :func:`check_targets`, once the logits are known.
    """
    if target is None:
        return None

    def one(t):
        if isinstance(t, str):
            from fastconv.models.imagenet import label_index
            return label_index(t)
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"{name} must be a class index, an ImageNet class name or a sequence of them, "
                            f"got {type(t).__name__} {t!r}")
        return int(t)

    if isinstance(target, Tensor):
        target = target.numpy()
    if isinstance(target, (str, numbers.Number)) or (isinstance(target, np.ndarray) and target.ndim == 0):
        t = one(target.item() if isinstance(target, np.ndarray) else target)
        return np.full(n, t, np.int64)
    get = getattr(target, "get", None)
    if callable(get) and not isinstance(target, np.ndarray):
        target = get()
    try:
        items = list(target)
    except TypeError:
        raise TypeError(f"{name} must be a class index, an ImageNet class name or a sequence of them, got "
                        f"{type(target).__name__}") from None
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries but the batch has {n} items; give one class per "
                         f"item or a single class for all")
    return np.array([one(t.item() if isinstance(t, np.generic) else t) for t in items], np.int64)


def check_targets(t: np.ndarray, logits_shape, name: str = "target") -> None:
    k = logits_shape[1]
    bad = (t < 0) | (t >= k)
    if bad.any():
        raise ValueError(f"{name} {t[bad].tolist()} out of range for a model with {k} classes "
                         f"(logits shape {tuple(logits_shape)})")


def check_logits(out, n: int) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"the model must return a Tensor of logits (N, classes), got {type(out).__name__}")
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(f"the model must return logits of shape ({n}, classes) for {n} inputs, got {out.shape}")
    return out


def inference(model):
    """``nn.frozen(model)``: eval mode, parameters frozen, everything restored afterwards."""
    return nn.frozen(model)


def predict_logits(model, x, batch_size: int | None = None):
    """Logits array (N, K) without a graph (call inside :func:`inference`)."""
    n = x.shape[0]
    bs = n if not batch_size else batch_size
    xp = get_xp(x)
    with no_grad():
        out = [check_logits(model(Tensor(x[i:i + bs])), min(bs, n - i)).data for i in range(0, n, bs)]
    return xp.concatenate(out) if len(out) > 1 else out[0]


def class_grad(model, x, target, kind: str = "logit"):
    """Gradient of the summed per-item objective w.r.t. x, with the logits.

    ``kind``: 'logit' (the class score y^c, what saliency maps differentiate) or 'logprob'
    (log softmax, what attacks maximize). ``target`` None means each item's predicted class.
    Summing over the batch is exact per item because items do not interact in eval mode.

    Returns (grad (N, C, H, W), logits (N, K), target (N,) int64, objective (N,)).
    """
    xt = Tensor(x, requires_grad=True)
    logits = check_logits(model(xt), x.shape[0])
    xp = get_xp(logits.data)
    if target is None:
        target = np.asarray(get_host(logits.data.argmax(axis=1)), np.int64)
    check_targets(target, logits.shape)
    scores = ops.log_softmax(logits, axis=1) if kind == "logprob" else logits
    picked = scores[xp.arange(x.shape[0]), xp.asarray(target)]
    picked.sum().backward()
    return xt.grad, logits.data, target, get_host(picked.data).astype(np.float64)


def get_host(a) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array."""
    get = getattr(a, "get", None)
    return get() if callable(get) and not isinstance(a, np.ndarray) else np.asarray(a)
