"""Train the small digits CNN from scratch, plot its loss curve and save its weights.

    python demos/train_digits.py [--epochs 10] [--seed 0] [--out out/digits]

Writes ``<out>/digits_cnn.npz`` (the weights the interpretability demos load through
``fastconv.models.digits.pretrained_digits_cnn``) and ``<out>/loss_curve.png``, and prints the
held-out accuracy (about 98% after 10 epochs, in about 10 s on two cores).
Needs scikit-learn for the data (pip install 'fastconv[demos]'); matplotlib draws the plot
when installed, Pillow otherwise.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fastconv.models.digits import train_digits


def plot_loss(losses, epoch_acc, path: str) -> None:
    """Loss per step (and its running mean) with the held-out accuracy per epoch."""
    losses = np.asarray(losses)
    smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_loss_pillow(losses, path)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(losses, alpha=0.35, label="loss per batch")
    ax.plot(np.arange(9, 9 + len(smooth)), smooth, label="running mean (10 batches)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax2 = ax.twinx()
    steps = len(losses) // len(epoch_acc)
    ax2.plot(steps * np.arange(1, len(epoch_acc) + 1), np.asarray(epoch_acc) * 100, "o-", color="C3",
             label="held-out accuracy")
    ax2.set_ylabel("held-out accuracy (%)")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax2.legend(handles=handles, loc="center right", fontsize=8)  # on the top axes, above both curves
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_loss_pillow(losses, path: str, size=(640, 360), margin=30) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size[0] - 2 * margin, size[1] - 2 * margin
    logl = np.log10(np.maximum(losses, 1e-8))
    lo, hi = logl.min(), max(logl.max(), logl.min() + 1e-6)
    pts = [(margin + w * i / max(len(logl) - 1, 1), margin + h * (1 - (v - lo) / (hi - lo)))
           for i, v in enumerate(logl)]
    draw.rectangle([margin, margin, margin + w, margin + h], outline="black")
    draw.line(pts, fill=(31, 119, 180), width=2)
    draw.text((margin, 8), f"cross-entropy per step (log scale, {10 ** lo:.3g} .. {10 ** hi:.3g})", fill="black")
    img.save(path)


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join("out", "digits"))
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    model, hist = train_digits(epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    wall = time.perf_counter() - t0
    weights = os.path.join(args.out, "digits_cnn.npz")
    model.save(weights)
    plot_loss(hist["loss"], hist["test_acc"], os.path.join(args.out, "loss_curve.png"))
    acc = hist["test_acc"][-1]
    print(f"held-out accuracy {acc:.2%} after {args.epochs} epochs; training {hist['seconds']:.1f} s, "
          f"total {wall:.1f} s")
    print(f"weights: {weights}\nloss curve: {os.path.join(args.out, 'loss_curve.png')}")
    return acc


if __name__ == "__main__":
    main()
