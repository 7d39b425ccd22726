"""``fastconv classify IMAGE... [--top 5] [--json]``: top-k ImageNet classes with EfficientNet-Lite0.

IMAGE is a path, or the name of a bundled sample photo (chelsea, coffee, rocket, camera,
astronaut, motorcycle) so that it runs with no files of the user's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def predict(model, pixels: np.ndarray, top: int = 5) -> list[list[tuple[int, str, float]]]:
    """Top-``top`` (index, label, probability) per image of a (N, 3, H, W) pixel batch."""
    from fastconv import ops
    from fastconv.autograd import no_grad
    from fastconv.models.imagenet import imagenet_labels

    labels = imagenet_labels()
    with no_grad():
        probs = ops.softmax(model(pixels), -1).data
    out = []
    for p in probs:
        idx = np.argsort(-p)[:top]
        out.append([(int(i), labels[i], float(p[i])) for i in idx])
    return out


def _load(arg: str):
    from fastconv.models.imagenet import SAMPLE_IMAGES, sample_image

    if os.path.exists(arg):
        return arg
    if arg in SAMPLE_IMAGES:
        return sample_image(arg)
    raise SystemExit(f"fastconv classify: {arg!r} is neither a file nor a sample photo "
                     f"({', '.join(SAMPLE_IMAGES)})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastconv classify", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image paths or sample names")
    parser.add_argument("--top", type=int, default=5, help="classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be >= 1")

    from fastconv.models.efficientnet import efficientnet_lite0
    from fastconv.models.imagenet import imagenet_pixels

    model = efficientnet_lite0().fused(activations=True)
    results = {}
    for arg in args.images:
        try:
            pixels = imagenet_pixels(_load(arg))[None]
        except OSError as e:   # not an image Pillow reads (PIL.UnidentifiedImageError), a directory, ...
            raise SystemExit(f"fastconv classify: cannot read {arg!r} as an image: {e}") from None
        results[arg] = predict(model, pixels, args.top)[0]
    if args.json:
        json.dump({k: [{"index": i, "label": lab, "probability": round(p, 6)} for i, lab, p in v]
                   for k, v in results.items()}, sys.stdout, indent=1)
        print()
        return 0
    for arg, rows in results.items():
        print(arg)
        for i, lab, p in rows:
            bar = "#" * int(round(p * 30))
            print(f"  {p:6.1%}  {bar:<30}  {lab.split(',')[0]}  [{i}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
