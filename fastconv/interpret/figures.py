"""The course's pictures, each a library function: arrays first, figures (uint8 RGB) from them.

* 1-D smoothing with the kernel (1/3, 1/3, 1/3): valid vs same vs stride 2
  (:func:`smoothing_1d`, :func:`smoothing_1d_figure`);
* receptive fields growing with depth and stride, drawn on the input image
  (:func:`conv_stack`, :func:`receptive_field_figure`);
* first-layer filters and feature maps (:func:`first_layer_filters`, :func:`feature_maps`);
* the convolution as a matrix C for a 4x4 input and a 3x3 kernel, and C^T, the transposed
  convolution (:func:`conv_matrix_example`, :func:`conv_matrix_figure`);
* checkerboard artifacts: how many kernel footprints of a transposed convolution cover each
  output pixel (:func:`overlap_map`), in a generated image (:func:`checkerboard_generated`)
  and in gradients (:func:`strided_conv_gradient`, :func:`input_gradient`).

Everything computes with fastconv's own convolutions; matplotlib (imported lazily) only draws.

References: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016;
Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016;
Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019.
"""
from __future__ import annotations

import numpy as np

import fastconv
from fastconv import nn, ops
from fastconv.autograd import Tensor, no_grad
from fastconv.backends import get_xp, to_device, to_numpy
from fastconv.interpret._common import model_device
from fastconv.io import colormap, image_grid, to_uint8
from fastconv.matrix import conv_matrix
from fastconv.plot import figure_to_array, have_matplotlib, line_plot, panel_figure, pyplot
from fastconv.receptive import receptive_field

__all__ = ["overlap_map", "overlap_figure", "checkerboard_generated", "checkerboard_figure",
           "strided_conv_gradient", "input_gradient", "phase_energy", "first_layer_filters", "feature_maps",
           "conv_matrix_example", "conv_matrix_figure", "smoothing_1d", "smoothing_1d_figure", "conv_stack",
           "receptive_field_figure", "features_only", "upscale", "signed_to_uint8"]


# ----------------------------------------------------------------------------- small helpers
def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (each pixel becomes a factor x factor block)."""
    factor = int(factor)
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def signed_to_uint8(a: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """A signed map (H, W) as grey uint8: 0 -> 128, +-(the percentile of |a|) -> 255 / 0."""
    a = np.asarray(a, dtype=np.float64)
    s = float(np.percentile(np.abs(a), percentile)) or float(np.abs(a).max()) or 1.0
    return np.clip(np.rint(127.5 + 127.5 * a / s), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- checkerboard
def overlap_map(kernel_size: int, stride: int, input_size: int, dims: int = 2) -> np.ndarray:
    """How many kernel footprints of a transposed convolution cover each output pixel.

    A transposed convolution paints one copy of its kernel into the output per input pixel,
    ``stride`` pixels apart. When the kernel size is not a multiple of the stride the copies
    overlap unevenly: kernel 3, stride 2 covers output pixels 1, 2, 1, 2, ... times in 1-D and
    1, 2, 4 times in 2-D, the checkerboard. Computed as exactly that: the transposed
    convolution (``fastconv.conv_transpose2d``) of an all-ones input with an all-ones kernel.

    Args:
        kernel_size, stride: of the transposed convolution (no padding).
        input_size: input length (1-D) or side (2-D).
        dims: 1 or 2.

    Returns:
        int64 array (L_out,) or (H_out, W_out), ``L_out = (input_size - 1) * stride + kernel_size``.

    Example:
        >>> overlap_map(3, 2, 4, dims=1)
        array([1, 1, 2, 1, 2, 1, 2, 1, 1])
        >>> sorted(set(overlap_map(3, 2, 5)[2:-2, 2:-2].ravel().tolist()))
        [1, 2, 4]
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    shape = (1, 1) + (int(input_size),) * dims
    wshape = (1, 1) + (int(kernel_size),) * dims
    fn = fastconv.conv_transpose2d if dims == 2 else fastconv.conv_transpose1d
    out = fn(np.ones(shape), np.ones(wshape), stride=int(stride))
    return np.rint(out[0, 0]).astype(np.int64)


def overlap_figure(cases=((3, 2), (4, 2), (3, 1)), input_size: int = 5) -> np.ndarray:
    """Overlap maps of transposed convolutions (kernel, stride) in 1-D (top) and 2-D (bottom, numbers shown)."""
    maps2 = [overlap_map(k, s, input_size) for k, s in cases]
    maps1 = [overlap_map(k, s, input_size, dims=1) for k, s in cases]
    if not have_matplotlib():
        return image_grid([upscale(colormap(m.astype(np.uint8) * (255 // max(int(m.max()), 1))), 12)
                           for m in maps2], ncols=len(maps2))
    plt = pyplot()
    n = len(cases)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 6.2), gridspec_kw={"height_ratios": [1, 3]})
    vmax = max(int(m.max()) for m in maps2)
    for c, ((k, s), m1, m2) in enumerate(zip(cases, maps1, maps2)):
        ax = axes[0, c]
        ax.bar(np.arange(len(m1)), m1, color=["C3" if v == m1.max() and m1.min() != m1.max() else "C0" for v in m1])
        ax.set_title(f"1-D: kernel {k}, stride {s}", fontsize=9)
        ax.set_yticks(range(0, int(m1.max()) + 1))
        ax.set_xticks([])
        ax = axes[1, c]
        ax.imshow(m2, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        for (i, j), v in np.ndenumerate(m2):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v < vmax * 0.6 else "black")
        ax.set_title(f"2-D: kernel {k}x{k}, stride {s}: values {sorted(set(m2.ravel().tolist()))}", fontsize=9)
        ax.axis("off")
    fig.suptitle("How many kernel copies of a transposed convolution cover each output pixel "
                 f"({input_size}x{input_size} input of ones)", fontsize=10)
    fig.tight_layout()
    return figure_to_array(fig)


def checkerboard_generated(size: int = 64, channels: int = 16, layers: int = 3, seed: int = 0,
                           constant_input: bool = False) -> dict:
    """Images made by randomly initialised upsampling stacks: transposed convolutions vs resize-convolution.

    From a (1, channels, size / 2^layers, ...) input (standard normal, or all ones with
    ``constant_input``), three stacks of ``layers`` upsampling steps (ReLU between, one output
    channel at the end) make a size x size image:

    * 'transposed k3 s2': ConvTranspose2d(kernel 3, stride 2, padding 1, output_padding 1),
      uneven overlap: checkerboard;
    * 'transposed k4 s2': ConvTranspose2d(kernel 4, stride 2, padding 1), even overlap, but
      random weights still differ per phase;
    * 'resize-conv': Upsample(nearest, 2) then Conv2d(3, padding 1): no checkerboard.

    Returns:
        dict name -> float array (size, size).
    """
    base = size >> layers
    if base < 1 or base << layers != size:
        raise ValueError(f"size {size} must be a multiple of 2^layers = {2 ** layers}")
    nn.manual_seed(seed)
    rng = np.random.default_rng(seed)
    z = np.ones((1, channels, base, base), np.float32) if constant_input else \
        rng.standard_normal((1, channels, base, base)).astype(np.float32)

    def stack(make):
        mods = []
        for i in range(layers):
            cout = 1 if i == layers - 1 else channels
            mods += make(channels, cout)
            if i < layers - 1:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods)

    nets = {
        "transposed k3 s2": stack(lambda ci, co: [nn.ConvTranspose2d(ci, co, 3, stride=2, padding=1,
                                                                     output_padding=1)]),
        "transposed k4 s2": stack(lambda ci, co: [nn.ConvTranspose2d(ci, co, 4, stride=2, padding=1)]),
        "resize-conv": stack(lambda ci, co: [nn.Upsample(scale_factor=2), nn.Conv2d(ci, co, 3, padding=1)]),
    }
    out = {}
    with no_grad():
        for name, net in nets.items():
            out[name] = net(Tensor(z)).data[0, 0].astype(np.float64)
    return out


def phase_energy(a: np.ndarray, stride: int = 2) -> np.ndarray:
    """Mean |a| on each of the stride x stride sub-grids (phases) of a map: uneven phases = checkerboard."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    return np.array([[a[i::stride, j::stride].mean() for j in range(stride)] for i in range(stride)])


def strided_conv_gradient(kernel_size: int = 3, stride: int = 2, size: int = 32, channels: int = 8,
                          seed: int = 0, weight=None, random: bool = False) -> np.ndarray:
    """Gradient w.r.t. its input of the summed response of one strided convolution layer.

    ``d sum(conv(x)) / dx`` is the transposed convolution of an all-ones map: every input
    pixel collects the kernel weights of the output windows that cover it, and with a kernel
    that is not a multiple of the stride, different pixels are covered by different numbers
    of windows. The gradient carries the overlap pattern of :func:`overlap_map` - the
    checkerboard that a feature visualization paints, step after step.

    Args:
        kernel_size, stride: of the layer ('same' padding).
        size: input side.
        channels: output channels.
        random: weights ``|N(0, 1)|`` (drawn with ``seed``) instead of ones; with ones the map
            is exactly the overlap count of :func:`overlap_map` (times ``channels``); random
            weights add a different sum of taps per phase on top, which even kernel 4 stride 2
            does not cancel.
        weight: use this (C_out, C_in, k, k) weight instead; the map is then for input channel 0.

    Returns:
        float64 (size, size).
    """
    if weight is None:
        rng = np.random.default_rng(seed)
        weight = (np.abs(rng.standard_normal((channels, 1, kernel_size, kernel_size))) if random
                  else np.ones((channels, 1, kernel_size, kernel_size)))
    weight = np.asarray(weight, dtype=np.float64)
    x = Tensor(np.zeros((1, weight.shape[1], size, size)), requires_grad=True)
    ops.conv2d(x, Tensor(weight), stride=stride, padding="same").sum().backward()
    return x.grad[0, 0]


def input_gradient(model, objective, size: int = 128, value: float = 127.5, channels: int = 3) -> np.ndarray:
    """Raw gradient of an objective w.r.t. a flat grey input image: the first step of a feature visualization.

    Args:
        model: a fastconv Module (pixel units).
        objective: an :class:`~fastconv.interpret.objectives.Objective`.
        size, value, channels: the input image (channels, size, size) filled with ``value``.

    Returns:
        float64 NumPy array (channels, size, size); the gradient is computed on the model's
        device (the GPU for a model moved there with ``.to('cuda')``).
    """
    from fastconv.interpret.render import _Runner
    x = Tensor(to_device(np.full((1, channels, size, size), value, np.float32), model_device(model)),
               requires_grad=True)
    with nn.frozen(model):
        _Runner(model, objective)(x).backward()
    return to_numpy(x.grad[0]).astype(np.float64)


def checkerboard_figure(model=None, seed: int = 0) -> np.ndarray:
    """Checkerboards in generated images (top) and in gradients (bottom), as one figure.

    Top row: random transposed-convolution stacks vs resize-convolution (a constant and a
    noise input). Bottom row: the gradient of a stride-2 3x3 layer's summed response, and,
    with ``model`` (EfficientNet-Lite0), the gradient of its stride-2 stem's response and of
    the 'robin' logit w.r.t. a grey image (signed, mean over RGB, a 32x32 crop, magnified),
    with the mean |gradient| on each of the four 2x2 phases relative to their mean (equal
    phases would all be 1).
    """
    items = []
    for const in (True, False):
        gen = checkerboard_generated(seed=seed, constant_input=const)
        for name, img in gen.items():
            items.append((f"{name} ({'ones' if const else 'noise'} in)", upscale(to_uint8(img, bounds=None), 2)))
    g = strided_conv_gradient(3, 2, 32, seed=seed)
    items.append(("d sum(conv 3x3 s2) / dx\n(weights 1: counts 1, 2, 4)",
                  upscale(to_uint8(g, bounds=(0, g.max())), 4)))
    g4 = strided_conv_gradient(4, 2, 32, seed=seed)
    items.append(("d sum(conv 4x4 s2) / dx\n(weights 1: even inside)",
                  upscale(to_uint8(g4, bounds=(0, g4.max())), 4)))
    if model is not None:
        from fastconv.interpret import objectives as obj
        gs = input_gradient(model, _sum_objective("_conv_stem"), size=64)
        items.append(("d sum(Lite0 stem, 3x3 s2) / dx\n(trained weights, crop)",
                      upscale(to_uint8(gs[0, 16:48, 16:48], bounds=None), 4)))
        gr = input_gradient(model, obj.class_logit("robin"), size=128).mean(axis=0)
        pe = phase_energy(gr)
        pe = (pe / pe.mean()).ravel().round(2).tolist()
        items.append((f"d 'robin' logit / dx at grey (crop)\n|grad| per 2x2 phase {pe}",
                      upscale(signed_to_uint8(gr[48:80, 48:80]), 4)))
    return panel_figure(items, ncols=6 if model is not None else 4,
                        title="Checkerboard artifacts: transposed convolutions (top) and gradients (bottom)")


def _sum_objective(layer):
    from fastconv.interpret.objectives import Objective
    return Objective(lambda acts, out: acts[layer].sum(), [layer], False, f"sum({layer})")


# ----------------------------------------------------------------------------- filters & maps
def _first_conv(model):
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ValueError("the model has no Conv2d layer")


def first_layer_filters(model, layer: str | None = None, scale: int = 12, ncols: int = 8) -> np.ndarray:
    """The kernels of the first convolution as an image grid (RGB for 3 input channels).

    Each filter (C_in, k, k) is shown as a k x k image, grey = 0, scaled by its own max |w|
    so that weak filters stay visible, and enlarged ``scale`` times with nearest-neighbour.

    Args:
        model: a fastconv Module; ``layer``: the name of a Conv2d (default: the first one,
            '_conv_stem' for EfficientNet-Lite0: 32 filters 3x3x3).

    Returns:
        uint8 (H, W, 3) grid.
    """
    if layer is None:
        layer, conv = _first_conv(model)
    else:
        conv = dict(model.named_modules())[layer]
    w = np.asarray(to_numpy(conv.weight.data), dtype=np.float64)
    tiles = []
    for f in w:
        f = f / (np.abs(f).max() or 1.0)
        img = np.clip(np.rint(127.5 + 127.5 * f), 0, 255).astype(np.uint8)
        img = img.transpose(1, 2, 0) if img.shape[0] == 3 else img[0]
        tiles.append(upscale(img, scale))
    return image_grid(tiles, ncols=ncols, pad=max(2, scale // 4))


def feature_maps(model, x, layer: str, n: int = 16, channels=None, size: int = 96, ncols: int = 8) -> np.ndarray:
    """The activation maps of ``layer`` for the image ``x``, as a grid of coloured maps.

    Args:
        model: a fastconv Module; x: (C, H, W) or (1, C, H, W) input in the model's units (moved
            to the model's device: the forward runs on the GPU for a model on 'cuda').
        layer: the layer's name ('_blocks.2', ...).
        n: how many channels to show: the ``n`` with the largest mean activation, unless
            ``channels`` lists them.
        size: each map is enlarged (nearest) to about this many pixels.

    Returns:
        uint8 (H, W, 3); each map scaled to its own min..max ('viridis').
    """
    x = x.data if isinstance(x, Tensor) else x
    xp = get_xp(x)
    x = to_device(xp.asarray(x, dtype=xp.float32), model_device(model))
    x = x[None] if x.ndim == 3 else x
    with nn.frozen(model), no_grad(), nn.capture(model, [layer]) as acts:
        model(Tensor(x))
    a = np.asarray(to_numpy(acts[layer].data[0]), dtype=np.float64)
    if channels is None:
        channels = np.argsort(-a.mean(axis=(1, 2)))[:n]
    factor = max(1, size // a.shape[1])
    tiles = []
    for c in channels:
        m = a[c]
        span = m.max() - m.min()
        u = np.zeros(m.shape, np.uint8) if span <= 0 else np.rint(255 * (m - m.min()) / span).astype(np.uint8)
        tiles.append(upscale(colormap(u, "viridis"), factor))
    return image_grid(tiles, ncols=ncols, pad=3)


# ----------------------------------------------------------------------------- conv as matrix
def conv_matrix_example(kernel=None, input_size: int = 4, seed: int = 0) -> dict:
    """The matrix C of a valid 3x3 convolution on a 4x4 input (4 x 16), and checks that C^T is the transposed conv.

    Args:
        kernel: a (3, 3) array; None: the symbolic kernel, computed with the distinct values
            1..9 so that every entry of C can be named k_ij.
        input_size: side of the square input.

    Returns:
        dict with ``C`` (dense, (out^2, in^2)), ``labels`` (the same shape, 'k_ij' or '0' /
        value strings), ``x``, ``y_matrix`` = C x, ``y_conv`` = conv2d(x), ``v``,
        ``CTv`` = C^T v and ``conv_transpose`` = conv_transpose2d(v), all flattened.

    Example:
        >>> ex = conv_matrix_example()
        >>> ex['C'].shape, bool(np.allclose(ex['CTv'], ex['conv_transpose']))
        ((4, 16), True)
    """
    symbolic = kernel is None
    k = np.arange(1, 10, dtype=np.float64).reshape(3, 3) if symbolic else np.asarray(kernel, dtype=np.float64)
    kh, kw = k.shape
    w = k[None, None]
    C = conv_matrix(w, (1, input_size, input_size)).toarray()
    if symbolic:
        labels = np.where(C != 0, np.vectorize(lambda v: f"k{int(v - 1) // 3}{int(v - 1) % 3}" if v else "0")(C), "0")
    else:
        labels = np.vectorize(lambda v: f"{v:.2g}" if v else "0")(C)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 1, input_size, input_size))
    out = input_size - kh + 1
    v = rng.standard_normal((1, 1, out, input_size - kw + 1))
    return {"C": C, "labels": labels, "kernel": k, "symbolic": symbolic,
            "x": x.ravel(), "y_matrix": C @ x.ravel(), "y_conv": fastconv.conv2d(x, w).ravel(),
            "v": v.ravel(), "CTv": C.T @ v.ravel(), "conv_transpose": fastconv.conv_transpose2d(v, w).ravel()}


def conv_matrix_figure(kernel=None, input_size: int = 4) -> np.ndarray:
    """Draw C (convolution as a matrix, 4 x 16 for a 4x4 input and a 3x3 kernel) and C^T (16 x 4).

    Non-zero cells are coloured by kernel position and labelled k_ij (or the values for a
    numeric ``kernel``); the text states the two identities checked numerically:
    ``C x = conv(x)`` and ``C^T v = conv_transpose(v)``.

    Returns:
        uint8 (H, W, 3).
    """
    ex = conv_matrix_example(kernel, input_size)
    C, labels = ex["C"], ex["labels"]
    ok_fwd = np.allclose(ex["y_matrix"], ex["y_conv"])
    ok_t = np.allclose(ex["CTv"], ex["conv_transpose"])
    if not have_matplotlib():
        cells = np.where(C != 0, 200, 255).astype(np.uint8)
        return image_grid([upscale(cells, 24), upscale(cells.T.copy(), 24)], ncols=2)
    plt = pyplot()
    rows, cols = C.shape
    fig = plt.figure(figsize=(12, 7.2))
    ax1 = fig.add_axes([0.03, 0.62, 0.94, 0.30])
    ax2 = fig.add_axes([0.03, 0.03, 0.2, 0.52])
    ax3 = fig.add_axes([0.27, 0.03, 0.70, 0.52])
    kid = np.where(C != 0, ex["C"] if ex["symbolic"] else 1.0, np.nan)

    def draw(ax, M, L, title):
        cmap = plt.get_cmap("tab10" if ex["symbolic"] else "Blues").with_extremes(bad="white")
        ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=0.5, vmax=10.5 if ex["symbolic"] else 2,
                  alpha=0.45, aspect="equal")
        for (i, j), lab in np.ndenumerate(L):
            ax.text(j, i, lab if lab != "0" else "0", ha="center", va="center",
                    fontsize=8, color="black" if lab != "0" else "0.6")
        ax.set_xticks(np.arange(M.shape[1]))
        ax.set_yticks(np.arange(M.shape[0]))
        ax.tick_params(labelsize=7)
        ax.set_xticks(np.arange(-0.5, M.shape[1]), minor=True)
        ax.set_yticks(np.arange(-0.5, M.shape[0]), minor=True)
        ax.grid(which="minor", color="0.8", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
        ax.set_title(title, fontsize=10)

    draw(ax1, kid, labels, f"C ({rows} x {cols}): row = output pixel, column = input pixel of the flattened "
                           f"{input_size}x{input_size} image;  C @ I_flat = O_flat")
    draw(ax2, kid.T, labels.T, f"C^T ({cols} x {rows})")
    ax3.axis("off")
    k = ex["kernel"]
    ktxt = "K = [k00 k01 k02; k10 k11 k12; k20 k21 k22]" if ex["symbolic"] else f"K = {np.round(k, 3).tolist()}"
    text = (f"{ktxt}, stride 1, padding 0:  {input_size}x{input_size} input -> "
            f"{input_size - k.shape[0] + 1}x{input_size - k.shape[1] + 1} output.\n\n"
            "Each row of C is the kernel laid out over the flattened input: the same 9 weights,\n"
            "shifted (weight sharing); the zeros are pixels the output does not see (locality).\n\n"
            "Backpropagation multiplies the gradient by C^T: that is the transposed convolution\n"
            "('deconvolution'), which maps the 2x2 output back to a 4x4 image.\n\n"
            f"checked with fastconv.conv_matrix on random x, v:\n"
            f"   C x   == conv2d(x)            {ok_fwd}\n"
            f"   C^T v == conv_transpose2d(v)  {ok_t}")
    ax3.text(0.0, 0.95, text, va="top", ha="left", fontsize=10, family="monospace")
    return figure_to_array(fig)


# ----------------------------------------------------------------------------- 1-D smoothing
def smoothing_1d(signal=None, kernel=(1 / 3, 1 / 3, 1 / 3), n: int = 40, seed: int = 0) -> dict:
    """Smooth a noisy loss curve with a 1-D convolution: 'valid', 'same' (zero padding) and stride 2.

    Args:
        signal: a 1-D array; default a noisy, decaying training-loss curve of ``n`` points.
        kernel: the smoothing kernel (the course's (0.33, 0.33, 0.33)).

    Returns:
        dict with ``signal``, and for 'valid', 'same', 'stride 2' a pair (positions, values):
        output i of a valid convolution is centred on input ``i + (K - 1) / 2``, of 'same' on
        ``i``, of stride 2 on ``2 i + (K - 1) / 2``. Lengths: n - K + 1, n, (n - K) // 2 + 1.

    Example:
        >>> r = smoothing_1d(n=10)
        >>> [len(r[k][1]) for k in ('valid', 'same', 'stride 2')]
        [8, 10, 4]
    """
    if signal is None:
        rng = np.random.default_rng(seed)
        i = np.arange(n)
        signal = 2.0 * np.exp(-i / 12.0) + 0.4 + 0.25 * rng.standard_normal(n) * np.exp(-i / 40.0)
    f = np.asarray(signal, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    x, w = f[None, None], k[None, None]
    K = len(k)
    c = (K - 1) / 2
    valid = fastconv.conv1d(x, w)[0, 0]
    same = fastconv.conv1d(x, w, padding="same")[0, 0]
    strided = fastconv.conv1d(x, w, stride=2)[0, 0]
    return {"signal": f, "kernel": k,
            "valid": (np.arange(len(valid)) + c, valid),
            "same": (np.arange(len(same)), same),
            "stride 2": (2 * np.arange(len(strided)) + c, strided)}


def smoothing_1d_figure(signal=None, kernel=(1 / 3, 1 / 3, 1 / 3), n: int = 40, seed: int = 0) -> np.ndarray:
    """Plot :func:`smoothing_1d`: the noisy curve and its valid, same and stride-2 smoothings."""
    r = smoothing_1d(signal, kernel, n, seed)
    f = r["signal"]
    series = {f"f(i): noisy loss per batch (n = {len(f)})": (np.arange(len(f)), f)}
    styles = {next(iter(series)): {"color": "0.6", "marker": ".", "linestyle": ":"}}
    for name, st in (("valid", {"marker": "o", "markersize": 4}), ("same", {"marker": "x", "markersize": 4}),
                     ("stride 2", {"marker": "s", "markersize": 5, "linestyle": "--"})):
        pos, val = r[name]
        label = {"valid": f"valid: {len(val)} values (window stays inside)",
                 "same": f"same: {len(val)} values (zeros padded: ends drop)",
                 "stride 2": f"stride 2 (valid): {len(val)} values"}[name]
        series[label] = (pos, val)
        styles[label] = st
    ktxt = ", ".join(f"{v:.2f}" for v in r["kernel"])
    return line_plot(series, title=f"1-D convolution with kernel ({ktxt}) as smoothing",
                     xlabel="batch i", ylabel="loss", styles=styles, size=(8, 4))


# ----------------------------------------------------------------------------- receptive fields
def conv_stack(depth: int = 4, stride: int = 1, kernel_size: int = 3, channels: int = 1) -> nn.Sequential:
    """``depth`` layers Conv2d(kernel_size, stride, 'same') + ReLU: the course's receptive-field example."""
    layers = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, kernel_size, stride=stride, padding="same"), nn.ReLU()]
    return nn.Sequential(*layers)


class _FeaturesOnly(nn.Module):
    def __init__(self, model, method: str):
        super().__init__()
        for name, m in model._modules.items():
            setattr(self, name, m)
        object.__setattr__(self, "_run", getattr(model, method))

    def forward(self, x):
        return self._run(x)


def features_only(model, method: str = "features") -> nn.Module:
    """A view of ``model`` whose forward is ``model.features`` (same sub-modules, same names).

    :func:`fastconv.receptive_field` needs a chain of layers; EfficientNet-Lite0's classifier
    flattens with a Tensor method between modules, so its receptive fields are computed on
    the convolutional trunk, which is what they describe anyway.
    """
    return _FeaturesOnly(model, method)


_COLORS = [(255, 255, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 128, 0), (80, 160, 255),
           (255, 60, 60), (255, 255, 255)]


def receptive_field_figure(image: np.ndarray, model, layers=None, unit=None, title: str = "",
                           scale: int = 1, font_size: int = 12) -> np.ndarray:
    """Draw the receptive fields of one unit of several layers as nested rectangles on the input image.

    Args:
        image: uint8 (H, W, 3) (or (H, W)): the input the model would see.
        model: a chain of layers (see :func:`fastconv.receptive_field`); its input is
            (1, C, H, W) with C = the first conv's in_channels.
        layers: names of the layers to draw (default: every convolution and pooling layer,
            at most 8, the deepest kept).
        unit: the unit's (y, x) in each layer's map; default, per layer, the unit whose field
            is centred nearest the image centre (so the rectangles nest).
        scale: enlarge the image (nearest) before drawing.

    Returns:
        uint8 (H * scale + legend, W * scale, 3); a rectangle that reaches outside the image is
        clipped to it and its label says so.
    """
    from PIL import Image, ImageDraw, ImageFont
    img = np.asarray(image)
    img = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]
    H, W = img.shape[:2]
    cin = _first_conv(model)[1].in_channels
    fields = receptive_field(model, (1, cin, H, W))
    by_name = {f.name: f for f in fields}
    if layers is None:
        chosen = [f for f in fields if f.layer in ("Conv2d", "MaxPool2d", "AvgPool2d")][-8:]
    else:
        missing = [n for n in layers if n not in by_name]
        if missing:
            raise KeyError(f"no layers {missing}; layers are {list(by_name)}")
        chosen = [by_name[n] for n in layers]
    big = Image.fromarray(upscale(img, scale))
    legend_h = (font_size + 4) * len(chosen) + 8
    canvas = Image.new("RGB", (W * scale, H * scale + legend_h), (255, 255, 255))
    canvas.paste(big, (0, 0))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    target = ((H - 1) / 2, (W - 1) / 2)

    def index(f):
        # the unit whose field is centred nearest the image centre: the boxes of all layers then nest
        if unit is not None:
            return tuple(unit)
        return tuple(int(min(max(round((t - c) / j), 0), n - 1))
                     for t, c, j, n in zip(target, f.start, f.jump, f.output_shape[2:]))

    for k, f in enumerate(reversed(chosen)):  # largest first, so smaller ones stay visible on top
        color = _COLORS[(len(chosen) - 1 - k) % len(_COLORS)]
        (y0, y1), (x0, x1) = f.window(index(f))
        box = [max(x0, 0) * scale, max(y0, 0) * scale,
               (min(x1, W - 1) + 1) * scale - 1, (min(y1, H - 1) + 1) * scale - 1]
        draw.rectangle(box, outline=color, width=2)
    dark = lambda c: tuple(int(v * 0.6) for v in c)  # noqa: E731 (legible on white)
    for k, f in enumerate(chosen):
        (y0, y1), (x0, x1) = f.window(index(f))
        clipped = y0 < 0 or x0 < 0 or y1 >= H or x1 >= W
        # short enough for a 224-pixel-wide picture
        txt = (f"{f.name}: field {f.size[0]}x{f.size[1]}, jump {f.jump[0]}"
               + (" (box clipped)" if clipped else ""))
        draw.text((4, H * scale + 4 + k * (font_size + 4)), txt, fill=dark(_COLORS[k % len(_COLORS)]), font=font)
    out = np.asarray(canvas)
    if title:
        title_img = Image.new("RGB", (out.shape[1], font_size + 10), (255, 255, 255))
        ImageDraw.Draw(title_img).text((4, 4), title, fill=(0, 0, 0), font=font)
        out = np.concatenate([np.asarray(title_img), out], axis=0)
    return out
