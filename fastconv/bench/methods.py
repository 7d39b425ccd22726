"""The compared methods: a builder per library that returns the function to time, and the reference.

* every fastconv algorithm ('auto' and each of the CPU backend's ``ALGOS``), called through the
  public functions (``fastconv.conv2d``, ``conv_transpose2d``, ``conv1d``, ``fastconv.grad``);
* PyTorch's ``torch.nn.functional`` convolutions;
* NumPy im2col: a materialised column matrix (``sliding_window_view``) times the weights (BLAS);
* SciPy: ``scipy.signal.correlate`` (method 'direct' and 'fft') and ``scipy.ndimage.correlate``
  on every 2-D (image, output channel, input channel) plane, summed over input channels;
* EfficientNet-Lite0: ``fastconv.models.efficientnet_lite0`` against the same network built
  here in torch from the same weights.

Correctness: every result of every method is compared with a float64 NumPy reference (for
Lite0: with torch) and its maximum relative error ``max|a - ref| / max|ref|`` recorded;
errors above 1e-4 are flagged in the report.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastconv.bench.cases import Case, lite0_blocks
from fastconv.bench.timing import _to_numpy

# ============================================================================ runners
# Each builder returns a zero-argument function computing the case's result (an array, or a
# tuple (y, grad_input, grad_weight) for gradient cases).
def fastconv_fn(case: Case, d: dict, algo: str):
    import fastconv
    x, w = d["x"], d.get("w")
    s, p, g = case.s, case.p, case.groups
    if case.kind == "conv1d":
        return lambda: fastconv.conv1d(x, w, algo=algo)
    if case.kind == "convT" and not case.grad:
        return lambda: fastconv.conv_transpose2d(x, w, stride=s, padding=p, algo=algo)
    if case.kind == "conv" and not case.grad:
        return lambda: fastconv.conv2d(x, w, stride=s, padding=p, groups=g, algo=algo)
    gy, G = d["gy"], fastconv.grad
    if case.kind == "conv":
        return lambda: (fastconv.conv2d(x, w, stride=s, padding=p, groups=g, algo=algo),
                        G.conv2d_input(x.shape, w, gy, stride=s, padding=p, groups=g, algo=algo),
                        G.conv2d_weight(x, w.shape, gy, stride=s, padding=p, groups=g, algo=algo))
    return lambda: (fastconv.conv_transpose2d(x, w, stride=s, padding=p, algo=algo),
                    G.conv_transpose2d_input(x.shape, w, gy, stride=s, padding=p, algo=algo),
                    G.conv_transpose2d_weight(x, w.shape, gy, stride=s, padding=p, algo=algo))


def case_geometry(case: Case):
    """The ConvGeometry of the case's forward op (None for Lite0)."""
    from fastconv.geometry import conv_geometry, transposed_geometry
    if case.kind == "lite0":
        return None
    if case.kind == "conv1d":
        return conv_geometry((1, 1, case.L), (1, 1, case.k), 1, 0, 1, 1, spatial_dims=1)
    if case.kind == "convT":
        return transposed_geometry((case.N, case.Ci, case.H, case.W), (case.Ci, case.Co, case.k, case.k),
                                   case.s, case.p, 0, 1, 1, spatial_dims=2)
    return conv_geometry((case.N, case.Ci, case.H, case.W),
                         (case.Co, case.Ci // case.groups, case.k, case.k),
                         case.s, case.p, 1, case.groups, spatial_dims=2)


def fastconv_auto_algo(case: Case) -> str | None:
    """The algorithm ``algo='auto'`` resolves to for the case's forward op."""
    from fastconv.backends import cpu
    geom = case_geometry(case)
    return None if geom is None else cpu.choose_algo(geom)


def fastconv_algo_applies(case: Case, algo: str) -> bool:
    """Whether the algorithm is timed on the case: Winograd covers 3x3 stride-1 convolutions
    only; FFT covers every convolution but is timed only where it may pay (stride 1, kernels of
    5x5 and more: elsewhere it is slow by construction and would only lengthen the run)."""
    from fastconv.backends import cpu
    if algo == "winograd":
        g = case_geometry(case)
        return g is not None and g.is_winograd_3x3
    if algo == "fft":
        g = case_geometry(case)
        return g is not None and cpu.fft_considered(g)
    return True


def torch_fn(case: Case, d: dict):
    import torch
    import torch.nn.functional as F
    x, w = torch.from_numpy(d["x"]), torch.from_numpy(d["w"])
    s, p, g = case.s, case.p, case.groups
    if case.kind == "conv1d":
        return lambda: F.conv1d(x, w)
    op = F.conv2d if case.kind == "conv" else F.conv_transpose2d
    kw = dict(stride=s, padding=p, groups=g)
    if not case.grad:
        def fwd():
            with torch.no_grad():
                return op(x, w, **kw)
        return fwd
    xg, wg, gy = x.clone().requires_grad_(True), w.clone().requires_grad_(True), torch.from_numpy(d["gy"])

    def fwd_bwd():
        xg.grad = wg.grad = None
        y = op(xg, wg, **kw)
        y.backward(gy)
        return y, xg.grad, wg.grad
    return fwd_bwd


# ---------------------------------------------------------------------------- NumPy im2col
def _pad2(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def np_im2col(xp, k, s):
    """(N, C, Hp, Wp) -> (N, C*k*k, Ho*Wo): the materialised column matrix."""
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    N, C, Ho, Wo = win.shape[:4]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * k * k, Ho * Wo), Ho, Wo


def np_col2im(cols, shape, k, s, Ho, Wo):
    """Adjoint of np_im2col: scatter-add (N, C*k*k, Ho*Wo) into a zero (N, C, Hp, Wp)."""
    N, C = shape[:2]
    cols = cols.reshape(N, C, k, k, Ho, Wo)
    out = np.zeros(shape, cols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += cols[:, :, i, j]
    return out


def np_conv2d(x, w, s, p, groups=1):
    N, C = x.shape[:2]
    O, Cg, k, _ = w.shape
    cols, Ho, Wo = np_im2col(_pad2(x, p), k, s)
    cols = cols.reshape(N, groups, Cg * k * k, Ho * Wo)
    return (w.reshape(groups, O // groups, -1) @ cols).reshape(N, O, Ho, Wo)


def np_conv_transpose2d(x, w, s, p):
    N, Ci, H, W = x.shape
    Co, k = w.shape[1], w.shape[2]
    cols = w.reshape(Ci, -1).T @ x.reshape(N, Ci, H * W)
    full = np_col2im(cols, (N, Co, (H - 1) * s + k, (W - 1) * s + k), k, s, H, W)
    return full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]


def np_conv2d_fwd_bwd(x, w, gy, s, p):
    N, C, H, W = x.shape
    O, _, k, _ = w.shape
    xp = _pad2(x, p)
    cols, Ho, Wo = np_im2col(xp, k, s)
    wm = w.reshape(O, -1)
    y = (wm @ cols).reshape(N, O, Ho, Wo)
    g = gy.reshape(N, O, Ho * Wo)
    gw = np.tensordot(g, cols, axes=([0, 2], [0, 2])).reshape(w.shape)
    gx = np_col2im(wm.T @ g, xp.shape, k, s, Ho, Wo)[:, :, p:p + H, p:p + W]
    return y, gx, gw


def np_conv_transpose2d_fwd_bwd(x, w, gy, s, p):
    N, Ci, H, W = x.shape
    k = w.shape[2]
    y = np_conv_transpose2d(x, w, s, p)
    colsg, _, _ = np_im2col(_pad2(gy, p), k, s)
    gx = (w.reshape(Ci, -1) @ colsg).reshape(x.shape)
    gw = np.tensordot(x.reshape(N, Ci, H * W), colsg, axes=([0, 2], [0, 2])).reshape(w.shape)
    return y, gx, gw


def numpy_fn(case: Case, d: dict):
    x, w, s, p = d["x"], d.get("w"), case.s, case.p
    if case.kind == "conv1d":
        return lambda: (sliding_window_view(x[0, 0], case.k) @ w[0, 0])[None, None]
    if case.grad:
        f = np_conv2d_fwd_bwd if case.kind == "conv" else np_conv_transpose2d_fwd_bwd
        return lambda: f(x, w, d["gy"], s, p)
    if case.kind == "convT":
        return lambda: np_conv_transpose2d(x, w, s, p)
    return lambda: np_conv2d(x, w, s, p, case.groups)


def reference(case: Case, d: dict):
    """The float64 NumPy result of a case (np.correlate for 1-D)."""
    d64 = {k: v.astype(np.float64) for k, v in d.items()}
    if case.kind == "conv1d":
        return np.correlate(d64["x"][0, 0], d64["w"][0, 0], mode="valid")[None, None]
    return numpy_fn(case, d64)()


# ---------------------------------------------------------------------------- SciPy per plane
def _ndimage_full_offset(k):
    """Offset o with ndimage.convolve(pad(a, k-1))[o:o+n+k-1] == signal.convolve(a, mode='full')."""
    from scipy import ndimage, signal
    rng = np.random.default_rng(1)
    a, kk = rng.standard_normal((7, 7)), rng.standard_normal((k, k))
    full = signal.convolve(a, kk, mode="full")
    nd = ndimage.convolve(np.pad(a, k - 1), kk, mode="constant")
    for off in range(2 * k):
        sl = nd[off:off + full.shape[0], off:off + full.shape[1]]
        if sl.shape == full.shape and np.allclose(sl, full):
            return off
    raise RuntimeError("could not align ndimage.convolve with the full convolution")


def scipy_units(case: Case, d: dict, method: str):
    """(total, run) for a 2-D case: run(m) computes the first m output planes (n, o) with SciPy.

    method: 'direct' or 'fft' (scipy.signal.correlate, convolve for transposed) or 'ndimage'.
    Stride-2 forward references compute the stride-1 result and subsample (as a SciPy user
    must), so they do about s*s times the nominal work. Returns None where a method does not
    apply to the case.
    """
    from scipy import ndimage, signal
    x, w, s, p, k = d["x"], d["w"], case.s, case.p, case.k
    N, Ci, Co = case.N, case.Ci, case.Co
    units = [(n, o) for n in range(N) for o in range(Co)]
    if case.kind == "conv":
        if method == "ndimage" and p != k // 2:
            return None
        xp = _pad2(x, p)
        Cg = Ci // case.groups

        def plane(n, o):
            acc = 0
            for cg in range(Cg):
                c = (o // (Co // case.groups)) * Cg + cg
                if method == "ndimage":
                    acc = acc + ndimage.correlate(x[n, c], w[o, cg], mode="constant")
                else:
                    acc = acc + signal.correlate(xp[n, c], w[o, cg], mode="valid", method=method)
            return acc[::s, ::s] if s > 1 else acc
    else:   # transposed: zero-dilate the input, full convolution, crop p
        Ho, Wo = case.out_hw
        Hd = (case.H - 1) * s + 1
        xd = np.zeros((N, Ci, Hd, Hd), x.dtype)
        xd[:, :, ::s, ::s] = x
        if method == "ndimage":
            xd = _pad2(xd, k - 1)
            off = _ndimage_full_offset(k) + p

        def plane(n, o):
            acc = 0
            for c in range(Ci):
                if method == "ndimage":
                    acc = acc + ndimage.convolve(xd[n, c], w[c, o], mode="constant")[off:off + Ho, off:off + Wo]
                else:
                    acc = acc + signal.convolve(xd[n, c], w[c, o], mode="full", method=method)[p:p + Ho, p:p + Wo]
            return acc
    return len(units), lambda m: [plane(n, o) for n, o in units[:m]]


def scipy_1d_fns(case: Case, d: dict) -> dict:
    from scipy import ndimage, signal
    x, w, K = d["x"][0, 0], d["w"][0, 0], case.k
    n = x.size - K + 1
    return {"scipy direct": lambda: signal.correlate(x, w, mode="valid", method="direct"),
            "scipy fft": lambda: signal.correlate(x, w, mode="valid", method="fft"),
            "ndimage": lambda: ndimage.correlate1d(x, w, mode="constant")[(K - 1) // 2:(K - 1) // 2 + n],
            "np.correlate": lambda: np.correlate(x, w, mode="valid")}


# ---------------------------------------------------------------------------- EfficientNet-Lite0
# (the stage table, lite0_blocks and lite0_flops live in cases.py)
def _same_pad(x, k, s):
    """TensorFlow SAME padding (low, high) of the last two axes, applied with F.pad."""
    import torch.nn.functional as F

    def lohi(n):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    (t, b), (l, r) = lohi(x.shape[-2]), lohi(x.shape[-1])
    return F.pad(x, (l, r, t, b)) if (t or b or l or r) else x


def torch_lite0(state: dict):
    """EfficientNet-Lite0 inference as a torch function of x (N, 3, H, W), from a state dict."""
    import torch
    import torch.nn.functional as F
    P = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()
         if isinstance(v, np.ndarray) and v.ndim > 0}

    def conv_bn(x, conv, bn, k, s=1, groups=1, act=True):
        x = F.conv2d(_same_pad(x, k, s), P[conv + ".weight"], stride=s, groups=groups)
        x = F.batch_norm(x, P[bn + ".running_mean"], P[bn + ".running_var"], P[bn + ".weight"],
                         P[bn + ".bias"], training=False, eps=1e-3)
        return F.relu6(x) if act else x

    blocks = list(lite0_blocks())

    def forward(x):
        x = conv_bn(x, "_conv_stem", "_bn0", 3, 2)
        for i, cin, cout, k, s, e in blocks:
            b, h = f"_blocks.{i}.", x
            if e != 1:
                h = conv_bn(h, b + "_expand_conv", b + "_bn0", 1)
            h = conv_bn(h, b + "_depthwise_conv", b + "_bn1", k, s, groups=h.shape[1])
            h = conv_bn(h, b + "_project_conv", b + "_bn2", 1, act=False)
            x = h + x if (s == 1 and cin == cout) else h
        x = conv_bn(x, "_conv_head", "_bn1", 1)
        return F.linear(x.mean((2, 3)), P["_fc.weight"], P["_fc.bias"])
    return forward


def lite0_torch_fn(case: Case, d: dict, state: dict):
    """(fn, target): torch Lite0 forward, or forward + gradient of the top logit w.r.t. the input."""
    import torch
    net = torch_lite0(state)
    x = torch.from_numpy(d["x"])
    if not case.grad:
        def fwd():
            with torch.no_grad():
                return net(x)
        return fwd, None
    with torch.no_grad():
        target = int(net(x)[0].argmax())

    def fwd_grad():
        xg = x.clone().requires_grad_(True)
        net(xg)[0, target].backward()
        return xg.grad
    return fwd_grad, target


def lite0_fastconv_fn(case: Case, d: dict, target: int | None):
    """fastconv's EfficientNet-Lite0 on the same input (raises ImportError/AttributeError when absent).

    ``efficientnet_lite0(pretrained=True, input='normalized')`` takes the same (pixel - 127) / 128
    input as the torch network; the gradient is that of the ``target`` logit. As a user runs it
    for inference and attribution: BatchNorm and the ReLU6s folded into the convolutions
    (``.fused(activations=True)``) and the weights frozen, so only the input gradient is
    computed, as on the torch side (whose weights are plain tensors).
    """
    from fastconv.models import efficientnet_lite0
    from fastconv.autograd import Tensor, no_grad
    model = efficientnet_lite0(pretrained=True, input="normalized").fused(activations=True)
    for p in model.parameters():
        p.requires_grad = False
    x = d["x"]

    def fwd():
        with no_grad():
            return _to_numpy(model(Tensor(x)))
    if not case.grad:
        return fwd
    if target is None:
        target = int(np.argmax(fwd()[0]))

    def fwd_grad():
        t = Tensor(x, requires_grad=True)
        y = model(t)
        seed = np.zeros(y.shape, x.dtype)
        seed[0, target] = 1
        y.backward(seed)
        return t.grad
    return fwd_grad
