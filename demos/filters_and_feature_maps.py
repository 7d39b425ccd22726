"""First-layer filters and feature maps of EfficientNet-Lite0: what the layers respond to.

    python demos/filters_and_feature_maps.py [--image chelsea] [--out out/filters_and_feature_maps]
"""
import argparse
import os

from fastconv.interpret.figures import feature_maps, first_layer_filters
from fastconv.io import save_image, to_uint8
from fastconv.models import efficientnet_lite0, imagenet_pixels, sample_image

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--image", default="chelsea")
ap.add_argument("--out", default=os.path.join("out", "filters_and_feature_maps"))
args = ap.parse_args()

model = efficientnet_lite0().fused()
save_image(first_layer_filters(model, "_conv_stem", scale=12), os.path.join(args.out, "filters.png"))
x = imagenet_pixels(sample_image(args.image))
save_image(to_uint8(x), os.path.join(args.out, "input.png"))
for layer in ("_conv_stem", "_blocks.3", "_blocks.10"):      # early, middle, late
    grid = feature_maps(model, x, layer, n=16, size=112)
    save_image(grid, os.path.join(args.out, f"maps_{layer.strip('_').replace('.', '_')}.png"))
print(f"PNGs in {args.out}")
