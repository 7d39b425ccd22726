"""``fastconv demo NAME|all [--out DIR] [--quick] [--device cpu|cuda] [--list]``: the course's pictures, as a gallery.

Each demo is a function ``(out_dir, quick) -> [(png file name, one-sentence caption), ...]``
registered under a name; running demos writes their PNGs into ``DIR`` (default
``out/gallery``) and an ``index.html`` that shows every picture with its sentence (a small
``gallery.json`` remembers the captions, so running one demo later updates its entries and
keeps the others). ``--quick`` shrinks every budget (steps, samples) to a smoke test.

``--device cuda`` runs the interpretability demos on the GPU through the device API: the
model is moved with ``Module.to('cuda')`` and the photos with ``backends.to_device``, so
forward and backward passes, attributions, attacks and feature visualizations compute on
CuPy arrays; what goes into a picture is brought back with ``backends.to_numpy``. The
pictures that are not model computations run on the CPU whatever the device: conv_matrix,
smoothing_1d, receptive_field (geometry), checkerboard's random stacks and overlap maps (its
EfficientNet gradients, outside --quick, use the device), and digits trains its small CNN on
the CPU before moving it to the device for predictions, saliency and visualizations. Without
CuPy or a usable GPU, ``--device cuda`` stops before any demo runs with a one-line error
(exit status 2). A demo reads the device with :func:`current_device`.

Example:
    $ fastconv demo --list
    $ fastconv demo conv_matrix checkerboard --out /tmp/gallery --quick
    $ fastconv demo all                       # a few minutes on two cores
    $ fastconv demo saliency featvis --device cuda
"""
from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
import traceback
from functools import lru_cache

import numpy as np

__all__ = ["DEMOS", "DEVICES", "demo", "current_device", "cuda_problem", "run_demos", "write_index", "main"]

DEMOS: dict = {}
DEVICES = ("cpu", "cuda")
_device = "cpu"  # set by run_demos for the demos it runs


def current_device() -> str:
    """The device ('cpu' or 'cuda') the demos being run put their models and inputs on."""
    return _device


def demo(name: str, summary: str):
    """Register ``fn(out_dir, quick) -> [(png, caption)]`` as demo ``name``."""
    def wrap(fn):
        DEMOS[name] = (fn, summary)
        return fn
    return wrap


# ----------------------------------------------------------------------------- shared inputs
@lru_cache(maxsize=2)
def _lite0_on(device: str):
    from fastconv.models.efficientnet import efficientnet_lite0
    model = efficientnet_lite0().fused()
    return model if device == "cpu" else model.to(device)


def _lite0():
    """The fused, pretrained EfficientNet-Lite0 on the current device (one copy per device, kept)."""
    return _lite0_on(_device)


def _dev(x):
    """A NumPy array on the current device (unchanged on the CPU)."""
    from fastconv.backends import to_device
    return to_device(x, _device)


def _host(x) -> np.ndarray:
    """A NumPy array from a NumPy or CuPy array: what pictures take."""
    from fastconv.backends import to_numpy
    return to_numpy(x)


@lru_cache(maxsize=None)
def _photo(name: str, size: int = 224) -> np.ndarray:
    from fastconv.models import imagenet_pixels, sample_image
    return imagenet_pixels(sample_image(name), size=size)  # (3, size, size) float32, 0..255


def _u8(x) -> np.ndarray:
    from fastconv.io import to_uint8
    return to_uint8(_host(x), bounds=(0, 255), channels_first=True)


def _save(out_dir: str, name: str, image: np.ndarray) -> str:
    from fastconv.io import save_image
    save_image(image, os.path.join(out_dir, name))
    return name


def _label(k: int) -> str:
    from fastconv.models import imagenet_labels
    return imagenet_labels()[int(k)].split(",")[0]


def _predict(model, x):
    """(class, probability) of the model (on the current device) for one image (3, H, W)."""
    from fastconv import ops
    from fastconv.autograd import Tensor, no_grad
    from fastconv.backends import get_xp
    x = _dev(x)
    xp = get_xp(x)
    with no_grad():
        p = _host(ops.softmax(model(Tensor(xp.asarray(x, xp.float32)[None])), axis=1).data[0])
    k = int(p.argmax())
    return k, float(p[k])


# ----------------------------------------------------------------------------- demos
@demo("filters", "first-layer filters of EfficientNet-Lite0")
def demo_filters(out, quick):
    from fastconv.interpret.figures import first_layer_filters
    model = _lite0()
    png = _save(out, "filters_lite0_stem.png", first_layer_filters(model, "_conv_stem", scale=20))
    return [(png, "The 32 first-layer filters of EfficientNet-Lite0 ('_conv_stem', 3x3 over RGB, stride 2), "
                  "grey = 0 and each scaled by its own largest weight, enlarged 20x: colour blobs, "
                  "colour-opponent pairs and oriented edges.")]


@demo("feature_maps", "activation maps of an early, a middle and a late layer")
def demo_feature_maps(out, quick):
    from fastconv.interpret.figures import feature_maps
    model = _lite0()
    x = _dev(_photo("chelsea"))
    res = [(_save(out, "feature_maps_input.png", _u8(x)),
            "The input: scikit-image's 'chelsea' photo, centre-cropped to 224x224 as EfficientNet-Lite0 expects.")]
    for layer, what in (("_conv_stem", "first convolution (112x112 maps): edges and colour contrasts, still "
                                       "readable as the cat"),
                        ("_blocks.3", "block 3 (28x28): textures and parts; the eyes still show in several maps"),
                        ("_blocks.10", "block 10 (14x14): coarse maps of abstract features, where the cat "
                                       "is no longer recognisable")):
        img = feature_maps(model, x, layer, n=8 if quick else 16, size=112)
        png = _save(out, f"feature_maps_{layer.strip('_').replace('.', '_')}.png", img)
        res.append((png, f"The 16 most active channels of '{layer}', each scaled to its own range: {what}."))
    return res


@demo("saliency", "saliency, SmoothGrad and Grad-CAM on two photos")
def demo_saliency(out, quick):
    from fastconv.interpret import grad_cam, guided_backprop, occlusion, saliency, smoothgrad
    from fastconv.io import normalize_map, overlay
    from fastconv.plot import panel_figure
    model = _lite0()
    window, stride = (75, 75) if quick else (32, 16)
    res = []
    for name in ("chelsea", "coffee"):
        x = _dev(_photo(name))
        k, p = _predict(model, x)
        s = saliency(model, x, k)
        gb = guided_backprop(model, x, k)
        sg = smoothgrad(model, x, k, n=4 if quick else 16, sigma=0.15)
        cam = grad_cam(model, x, k, layer="_blocks.15")
        occ = occlusion(model, x, k, window=window, stride=stride, baseline=127.5, batch_size=8)
        photo = _u8(x)
        items = [(f"'{name}': {_label(k)} ({p:.0%})", photo),
                 ("saliency |d logit / d x|", normalize_map(_host(s.map))),
                 ("saliency over the photo", overlay(photo, _host(s.map), alpha=0.6)),
                 (f"SmoothGrad (n={4 if quick else 16})", normalize_map(_host(sg.map))),
                 ("Guided Backprop", normalize_map(_host(gb.map))),
                 ("Grad-CAM ('_blocks.15')", overlay(photo, _host(cam.map), alpha=0.5)),
                 (f"occlusion ({window} px grey, stride {stride})",
                  overlay(photo, np.maximum(_host(occ.map), 0), alpha=0.5))]
        png = _save(out, f"saliency_{name}.png", panel_figure(items, ncols=len(items), cell=2.4))
        res.append((png, f"Which pixels move the '{_label(k)}' logit most on the '{name}' photo: the raw gradient "
                         f"(max over RGB of |d logit/d x|), SmoothGrad's average over noisy copies (less speckle), "
                         f"Guided Backprop (only positive gradients through the ReLU6s: sharper), Grad-CAM's coarse "
                         f"class map, and occlusion, which needs no gradient: how far the logit drops when a grey "
                         f"square covers each place - they light up "
                         f"{('the eyes, the nose and the fur' if name == 'chelsea' else 'the cup and the coffee')}."))
    return res


def _robin_variants(quick):
    from fastconv.interpret import regularizers as R
    return [("no regularization", []),
            ("L2 penalty", [R.lp_penalty(2, 300.0)]),
            ("L-inf penalty (smooth)", [R.linf_penalty(100.0, temperature=0.05)]),
            ("Gaussian blur 0.5 px / 4 steps", [R.gaussian_blur(0.5, every=4)]),
            ("Laplacian-pyramid gradient", [R.laplacian_pyramid_gradient(4)]),
            ("pyramid + blur", [R.laplacian_pyramid_gradient(4), R.gaussian_blur(0.5, every=8)]),
            ("blur + 20% small-norm clip", [R.gaussian_blur(0.5, every=4), R.percentile_clip(20, every=4)])]


@demo("featvis", "feature visualization of the class 'robin' and of channels, without and with regularization, "
                "and a diverse batch")
def demo_featvis(out, quick):
    from fastconv.interpret import objectives as O
    from fastconv.interpret import param as P
    from fastconv.interpret import regularizers as R
    from fastconv.interpret.render import visualize
    from fastconv.plot import panel_figure
    model = _lite0()
    steps = 4 if quick else 64
    size = 64 if quick else 128
    lr = 0.2
    shape = (1, 3, size, size)
    res = []
    items = []
    robin = O.class_logit("robin")
    for title, regs in _robin_variants(quick):
        r = visualize(model, robin, shape, param=P.pixel_image(shape, decorrelate=True), regularizers=regs,
                      steps=steps, lr=lr, progress=True)
        items.append((f"{title}\nlogit {r.final_value:.1f}, HF share {R.high_frequency_share(r.pixels):.2f}",
                      r.image))
    r = visualize(model, robin, shape, param=P.fft_image(shape), steps=steps, lr=0.05, progress=True)
    items.append((f"Lucid: FFT 1/f + decorrelated colour\nlogit {r.final_value:.1f}, "
                  f"HF share {R.high_frequency_share(r.pixels):.2f}", r.image))
    png = _save(out, "featvis_robin.png", panel_figure(items, ncols=4, cell=2.9, fontsize=8,
                                                       title="Maximizing the 'robin' logit of EfficientNet-Lite0 "
                                                             f"({steps} Adam steps, {size} px, jitter/scale/rotate)"))
    res.append((png, "The class 'robin' (American robin) by gradient ascent from grey noise: without regularization "
                     "the image is high-frequency noise (HF share = spectral energy above half Nyquist); L2 / "
                     "L-inf penalties barely help, Gaussian blur and the Laplacian-pyramid gradient remove the "
                     "noise (the pyramid also grows larger structures), as does Lucid's spectral parameterization; "
                     "the smoother images reach higher logits and show the robin's orange breast and grey-brown "
                     "feathers in patches. Yosinski et al.'s clipping of the faintest pixels to the mean colour, "
                     "on top of blur, keeps the background flat but costs logit."))
    layers = [("_blocks.2", 5, "early"), ("_blocks.8", 17, "middle"), ("_blocks.14", 42, "late")]
    items = []
    for layer, ch, depth in layers:
        o = O.channel(layer, ch)
        a = visualize(model, o, shape, param=P.pixel_image(shape, decorrelate=True), steps=steps, lr=lr,
                      progress=True)
        b = visualize(model, o, shape, param=P.pixel_image(shape, decorrelate=True), steps=steps, lr=lr,
                      regularizers=[R.laplacian_pyramid_gradient(4), R.gaussian_blur(0.5, every=8)], progress=True)
        items += [(f"{depth}: {layer} ch {ch}, plain\nmean act {a.final_value:.2f}", a.image),
                  (f"{depth}: {layer} ch {ch}, pyramid + blur\nmean act {b.final_value:.2f}", b.image)]
    png = _save(out, "featvis_channels.png", panel_figure(items, ncols=6, cell=2.6, fontsize=8,
                                                          title="Channels of an early, a middle and a late layer"))
    res.append((png, "Mean activation of one channel of an early ('_blocks.2'), a middle ('_blocks.8') and a late "
                     "('_blocks.14') block, each without and with regularization (Laplacian-pyramid gradient + "
                     "blur): deeper channels prefer larger, more complex patterns."))
    layer, ch, weight = "_blocks.8", 17, 10.0
    batch = (4, 3, size, size)
    items = []
    for title, o in (("alone", O.channel(layer, ch)),
                     (f"- {weight:g} x diversity", O.channel(layer, ch) - weight * O.diversity(layer))):
        r = visualize(model, o, batch, param=P.pixel_image(batch, decorrelate=True), steps=steps, lr=lr,
                      regularizers=[R.laplacian_pyramid_gradient(4), R.gaussian_blur(0.5, every=8)], progress=True)
        items += [(f"{title}: image {i + 1}", im) for i, im in enumerate(r.images)]
    png = _save(out, "featvis_diversity.png", panel_figure(items, ncols=4, cell=2.4, fontsize=8,
                                                           title=f"{layer} channel {ch}, a batch of 4: "
                                                                 f"without and with the diversity term"))
    res.append((png, f"Four images of one channel ('{layer}' {ch}) rendered together: alone they converge to the "
                     f"same pattern; subtracting Lucid's diversity term (the batch's mean pairwise cosine "
                     f"similarity of the images' Gram matrices) makes each show another facet of what the "
                     f"channel responds to."))
    return res


@demo("adversarial", "chelsea -> burrito: PGD vs EOT-PGD under random transformations")
def demo_adversarial(out, quick):
    from fastconv.interpret import eot_evaluate, eot_pgd, pgd
    from fastconv.interpret import transforms as T
    from fastconv.io import to_uint8
    from fastconv.models import label_index
    from fastconv.plot import bar_plot, panel_figure
    model = _lite0()
    x = _photo("chelsea")
    xd = _dev(x)  # the attacks run where the model is; x stays NumPy for the pictures
    target = label_index("burrito")
    steps = 3 if quick else 20
    samples = 2 if quick else 8
    n_eval = 10 if quick else 100
    dist = T.compose(T.random_affine(15, (0.9, 1.1), 10), T.brightness(20), T.gaussian_noise(5))
    plain = pgd(model, xd, target, eps=8, steps=steps)
    robust = eot_pgd(model, xd, target, eps=8, steps=steps, transforms=dist, samples=samples)
    rate_plain = eot_evaluate(model, plain, target, dist, n=n_eval, seed=123)
    rate_eot = eot_evaluate(model, robust, target, dist, n=n_eval, seed=123)
    k0, p0 = _predict(model, x)
    items = [(f"original: {_label(k0)} ({p0:.0%})", _u8(x))]
    for name, r in (("PGD", plain), ("EOT-PGD", robust)):
        xa = _host(r.x_adv)
        k, p = _predict(model, xa)
        items.append((f"{name} perturbation x10", to_uint8(127.5 + 10 * (xa - x), channels_first=True)))
        items.append((f"{name}: {_label(k)} ({p:.0%})", _u8(xa)))
    png1 = _save(out, "adversarial_burrito.png", panel_figure(items, ncols=5, cell=2.8,
                 title=f"Targeted attack '{_label(k0)}' -> 'burrito', |x_adv - x| <= 8 pixel levels (8/255)"))
    png2 = _save(out, "adversarial_eot_rates.png", bar_plot(
        {"PGD": rate_plain, "EOT-PGD": rate_eot}, ylim=(0, 1.15), ylabel="classified as burrito",
        title=f"Under the same {n_eval} random rotations, zooms,\nshifts, brightness and noise"))
    return [(png1, f"Chelsea the cat becomes a 'burrito' for EfficientNet-Lite0 with a perturbation of at most 8/255 "
                   f"per pixel (shown 10x): plain PGD ({steps} steps) and EOT-PGD ({steps} steps x {samples} random "
                   f"transformations); the pictures look unchanged."),
            (png2, f"Share of {n_eval} random transformations (rotation 15 deg, zoom 0.9-1.1, shift 10 px, brightness, "
                   f"noise) under which each adversarial image is still a burrito: PGD {rate_plain:.0%}, "
                   f"EOT-PGD {rate_eot:.0%} - the expectation over transformation makes the example robust.")]


@demo("conv_matrix", "convolution as a matrix C, and C^T as the transposed convolution")
def demo_conv_matrix(out, quick):
    from fastconv.interpret.figures import conv_matrix_figure
    png = _save(out, "conv_matrix.png", conv_matrix_figure())
    return [(png, "A 3x3 convolution of a 4x4 image is a 4x16 matrix C (the kernel repeated along shifted rows, "
                  "zeros elsewhere); its transpose C^T, 16x4, is the transposed convolution that backpropagation "
                  "applies - both checked against fastconv.conv_matrix, conv2d and conv_transpose2d.")]


@demo("checkerboard", "checkerboard artifacts: overlap maps, generated images and gradients")
def demo_checkerboard(out, quick):
    from fastconv.interpret.figures import checkerboard_figure, overlap_figure
    png1 = _save(out, "checkerboard_overlap.png", overlap_figure())
    png2 = _save(out, "checkerboard.png", checkerboard_figure(None if quick else _lite0()))
    return [(png1, "How many kernel copies of a transposed convolution land on each output pixel: kernel 3 stride 2 "
                   "gives 1, 2 and 4 in 2-D (a checkerboard), kernel 4 stride 2 is even away from the borders "
                   "(Odena et al., 2016)."),
            (png2, "Top: randomly initialised transposed-convolution stacks paint checkerboards, nearest-upsampling "
                   "followed by a convolution does not. Bottom: the gradient of a stride-2 layer w.r.t. its input is "
                   "a transposed convolution, and carries the same pattern"
                   + ("." if quick else " - also for EfficientNet-Lite0's stem and its 'robin' logit: the source "
                                        "of the high-frequency noise in unregularized feature visualizations."))]


@demo("smoothing_1d", "1-D smoothing of a noisy loss curve: valid vs same vs stride 2")
def demo_smoothing_1d(out, quick):
    from fastconv.interpret.figures import smoothing_1d_figure
    png = _save(out, "smoothing_1d.png", smoothing_1d_figure())
    return [(png, "A noisy training-loss curve smoothed by convolving with (1/3, 1/3, 1/3): 'valid' drops the two "
                  "ends (n-2 values), 'same' pads with zeros and keeps n values (its ends sag toward 0), stride 2 "
                  "keeps every other window.")]


@demo("receptive_field", "receptive fields growing with depth and stride, drawn on the image")
def demo_receptive_field(out, quick):
    from fastconv.interpret.figures import conv_stack, features_only, receptive_field_figure
    from fastconv.io import image_grid
    from fastconv.models.efficientnet import efficientnet_lite0
    small = _u8(_photo("chelsea", 128))
    a = receptive_field_figure(small, conv_stack(4, stride=1), scale=2, title="4 conv 3x3, stride 1")
    b = receptive_field_figure(small, conv_stack(4, stride=2), scale=2, title="4 conv 3x3, stride 2")
    png1 = _save(out, "receptive_field_stacks.png", image_grid([a, b], ncols=2, pad=6))
    # the geometry needs neither the weights nor the input normalization; the trunk is a chain of layers
    model = features_only(efficientnet_lite0(pretrained=False, input="normalized"))
    layers = ["_conv_stem", "_blocks.1._depthwise_conv", "_blocks.3._depthwise_conv", "_blocks.5._depthwise_conv",
              "_blocks.8._depthwise_conv", "_blocks.11._depthwise_conv", "_blocks.15._depthwise_conv"]
    c = receptive_field_figure(_u8(_photo("chelsea")), model, layers=layers, scale=2,
                               title="EfficientNet-Lite0: field of the centre unit")
    png2 = _save(out, "receptive_field_lite0.png", c)
    return [(png1, "The input pixels one centre unit sees after 1-4 layers of 3x3 convolutions: with stride 1 the "
                   "field grows by 2 pixels per layer (3, 5, 7, 9), with stride 2 it doubles (3, 7, 15, 31)."),
            (png2, "Receptive fields of EfficientNet-Lite0's centre units (fastconv.receptive_field): from 3x3 at the "
                   "stem to more than the whole 224x224 image in the last blocks.")]


@demo("digits", "the small digits CNN: training curve, predictions, saliency, class visualizations")
def demo_digits(out, quick):
    from fastconv.autograd import Tensor, no_grad
    from fastconv.data import load_digits
    from fastconv.interpret import objectives as O
    from fastconv.interpret import regularizers as R
    from fastconv.interpret import saliency
    from fastconv.interpret.figures import first_layer_filters, upscale
    from fastconv.interpret.render import visualize
    from fastconv.io import normalize_map, to_uint8
    from fastconv.models.digits import train_digits
    from fastconv.plot import line_plot, panel_figure
    epochs = 2 if quick else 10
    model, hist = train_digits(epochs=epochs, progress=True)  # 8x8 images, 25k weights: trained on the CPU
    model.save(os.path.join(out, "digits_cnn.npz"))
    if _device != "cpu":
        model.to(_device)
    loss = np.asarray(hist["loss"])
    smooth = np.convolve(loss, np.ones(10) / 10, mode="valid")
    png1 = _save(out, "digits_loss.png", line_plot(
        {"loss per batch": (np.arange(len(loss)), loss), "mean of 10 batches": (np.arange(9, 9 + len(smooth)), smooth)},
        title=f"digits CNN: cross-entropy per step ({epochs} epochs, held-out accuracy "
              f"{hist['test_acc'][-1]:.1%})", xlabel="step", ylabel="loss", logy=True))
    d = load_digits()
    x, y = d.x_test[:12], d.y_test[:12]
    xd = _dev(x)
    with no_grad():
        pred = _host(model(Tensor(xd)).data.argmax(axis=1))
    items = []
    for i in range(len(x)):
        s = saliency(model, xd[i], int(pred[i]))
        items.append((f"true {y[i]}, predicted {pred[i]}", upscale(to_uint8(x[i], bounds=(0, 1)), 12)))
        items.append((f"saliency for {pred[i]}", upscale(normalize_map(_host(s.map), 100), 12)))
    png2 = _save(out, "digits_predictions.png", panel_figure(items, ncols=8, cell=1.6, fontsize=7))
    vis = visualize(model, sum(O.class_logit(c, batch=c) for c in range(10)),
                    shape=(10, 1, 8, 8), value_range=(0.0, 1.0), steps=10 if quick else 100, lr=0.05,
                    regularizers=[R.lp_penalty(2, 60.0)], progress=True)  # default transforms: 1-px shifts
    items = [(f"class {c}", upscale(vis.images[c], 12)) for c in range(10)]
    items.append(("first-layer filters", first_layer_filters(model, scale=12, ncols=4)))
    png3 = _save(out, "digits_featvis.png", panel_figure(items, ncols=6, cell=1.8, fontsize=8))
    return [(png1, f"Training the 25k-parameter digits CNN with fastconv's autograd and Adam: the loss per batch "
                   f"falls for {epochs} epochs, to {hist['test_acc'][-1]:.1%} held-out accuracy."),
            (png2, "Twelve held-out digits with the CNN's prediction and the saliency of the predicted class: the "
                   "strokes that decide the class light up."),
            (png3, "Each class logit of the digits CNN maximized from grey (ten objectives in one batch, "
                   "random 1-pixel shifts, L2 penalty): stroke fragments rather than clean digits (the 1 is a "
                   "vertical bar), as an 8x8 model's evidence is local; and its 16 first-layer 3x3 filters.")]


# ----------------------------------------------------------------------------- running
def cuda_problem() -> str | None:
    """None when CuPy and a CUDA GPU are usable, else one line saying why not."""
    try:
        from fastconv.backends import to_device
        to_device(np.zeros(1, np.float32), "cuda")  # imports CuPy, finds a device, allocates on it
    except Exception as exc:  # ImportError, RuntimeError, CUDA errors: all mean "no GPU here"
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def run_demos(names, out_dir: str, quick: bool = False, stream=None, device: str = "cpu") -> tuple[list, list]:
    """Run the named demos into ``out_dir``; returns (entries, failures).

    ``entries`` are dicts {demo, png, caption, seconds}; ``failures`` are (name, message).
    A failing demo (e.g. a missing optional package) is reported and the others still run.
    ``device`` ('cpu' or 'cuda') is where the demos put their models and inputs (see
    :func:`current_device`); check :func:`cuda_problem` first for 'cuda'.
    """
    global _device
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    stream = sys.stdout if stream is None else stream
    os.makedirs(out_dir, exist_ok=True)
    entries, failures = [], []
    where = "" if device == "cpu" else f" on {device}"
    previous, _device = _device, device
    try:
        for i, name in enumerate(names, 1):
            fn, summary = DEMOS[name]
            print(f"[{i}/{len(names)}] {name}: {summary}{' (quick)' if quick else ''}{where} ...", file=stream,
                  flush=True)
            t0 = time.perf_counter()
            try:
                pictures = fn(out_dir, quick)
            except Exception as exc:  # keep going: one missing extra must not hide the other demos
                failures.append((name, f"{type(exc).__name__}: {exc}"))
                print(f"    FAILED after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {exc}",
                      file=stream)
                traceback.print_exc(file=sys.stderr)
                continue
            dt = time.perf_counter() - t0
            for png, caption in pictures:
                entries.append({"demo": name, "png": png, "caption": caption, "seconds": round(dt, 2)})
                print(f"    {os.path.join(out_dir, png)}", file=stream)
            print(f"    done in {dt:.1f} s", file=stream, flush=True)
    finally:
        _device = previous
    return entries, failures


_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "figure{margin:2em 0;border-bottom:1px solid #ddd;padding-bottom:1.5em}"
        "img{max-width:100%;image-rendering:pixelated}figcaption{margin-top:.5em;line-height:1.4}"
        "h2{margin-top:2em}.t{color:#888;font-size:.85em}")


def write_index(out_dir: str, entries: list, title: str = "fastconv: the course's pictures") -> str:
    """Write ``index.html`` (self-contained, images by relative path) and ``gallery.json``; returns the html path.

    Entries already in ``gallery.json`` from earlier runs are kept unless a demo of the same
    name ran again; entries whose PNG is missing are dropped.
    """
    manifest = os.path.join(out_dir, "gallery.json")
    old = []
    if os.path.exists(manifest):
        try:
            with open(manifest, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = []
    rerun = {e["demo"] for e in entries}
    merged = [e for e in old if e.get("demo") not in rerun] + list(entries)
    order = {name: i for i, name in enumerate(DEMOS)}
    merged = sorted((e for e in merged if os.path.exists(os.path.join(out_dir, e["png"]))),
                    key=lambda e: order.get(e["demo"], len(order)))
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(merged, f, indent=1)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p>Made by <code>fastconv demo</code>; every picture is computed by fastconv's own convolutions "
             "and autograd.</p>"]
    current = None
    for e in merged:
        if e["demo"] != current:
            current = e["demo"]
            summary = DEMOS[current][1] if current in DEMOS else ""
            parts.append(f"<h2 id='{html.escape(current)}'>{html.escape(current)}</h2>"
                         f"<p>{html.escape(summary)} <span class='t'>({e['seconds']:.1f} s)</span></p>")
        src = html.escape(e["png"], quote=True)
        parts.append(f"<figure><a href='{src}'><img src='{src}' alt='{html.escape(e['caption'], quote=True)}'></a>"
                     f"<figcaption>{html.escape(e['caption'])}</figcaption></figure>")
    parts.append("</body></html>")
    path = os.path.join(out_dir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    return path


def main(argv=None) -> int:
    """Entry point of ``fastconv demo``; returns the exit status (1 if any demo failed)."""
    ap = argparse.ArgumentParser(prog="fastconv demo", description="Run the course's demos and write a "
                                 "picture gallery (PNG files and index.html).")
    ap.add_argument("names", nargs="*", help="demo names, or 'all' (see --list)")
    ap.add_argument("--out", default=os.path.join("out", "gallery"), help="output folder (default out/gallery)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test in seconds")
    ap.add_argument("--list", action="store_true", help="list the demos and exit")
    ap.add_argument("--device", choices=DEVICES, default="cpu",
                    help="where the models compute (default cpu). cuda (needs CuPy and an NVIDIA GPU) runs "
                         "filters, feature_maps, saliency, featvis and adversarial on the GPU, as well as digits' "
                         "predictions, saliency and visualizations (its training stays on the CPU) and "
                         "checkerboard's EfficientNet gradients (not drawn with --quick); conv_matrix, smoothing_1d, "
                         "receptive_field and checkerboard's overlap maps and random stacks are CPU pictures and "
                         "run on the CPU regardless.")
    args = ap.parse_args(argv)
    if args.list or not args.names:
        for name, (_, summary) in DEMOS.items():
            print(f"  {name:16s} {summary}")
        if not args.list:
            print("usage: fastconv demo NAME [NAME ...]|all [--out DIR] [--quick] [--device cpu|cuda]")
        return 0 if args.list else 2
    names = list(DEMOS) if "all" in args.names else args.names
    unknown = [n for n in names if n not in DEMOS]
    if unknown:
        print(f"unknown demo(s) {unknown}; choose from {list(DEMOS)} or 'all'", file=sys.stderr)
        return 2
    if args.device == "cuda":
        problem = cuda_problem()
        if problem is not None:
            print(f"fastconv demo: --device cuda needs CuPy and a CUDA GPU: {problem}", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    entries, failures = run_demos(names, args.out, args.quick, device=args.device)
    index = write_index(args.out, entries)
    print(f"{len(entries)} pictures from {len(names) - len(failures)}/{len(names)} demos in "
          f"{time.perf_counter() - t0:.1f} s; open {index}")
    for name, msg in failures:
        print(f"  failed: {name}: {msg}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
