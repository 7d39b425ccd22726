"""Saliency maps: which pixels change EfficientNet-Lite0's class score most (Simonyan et al., 2014).

    python demos/saliency.py [--image chelsea] [--out out/saliency]

The saliency map is |d score / d pixel| (max over RGB), computed by one backward pass;
SmoothGrad averages it over noisy copies, Grad-CAM weighs a late layer's maps by their
gradients.
"""
import argparse
import os

from fastconv.interpret import grad_cam, saliency, smoothgrad
from fastconv.io import normalize_map, overlay, save_image, to_uint8
from fastconv.models import SAMPLE_IMAGES, efficientnet_lite0, imagenet_labels, imagenet_pixels, sample_image

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--image", default="chelsea", help=f"one of {SAMPLE_IMAGES} or a file")
ap.add_argument("--out", default=os.path.join("out", "saliency"))
args = ap.parse_args()

model = efficientnet_lite0().fused()
photo = sample_image(args.image) if args.image in SAMPLE_IMAGES else args.image
x = imagenet_pixels(photo)                                     # (3, 224, 224), pixels 0..255
s = saliency(model, x)                                         # target None: the predicted class
print(f"predicted: {imagenet_labels()[int(s.target)]}")
sg = smoothgrad(model, x, s.target, n=16)
cam = grad_cam(model, x, s.target, layer="_blocks.15")

image = to_uint8(x)
save_image(image, os.path.join(args.out, "input.png"))
save_image(normalize_map(s.map), os.path.join(args.out, "saliency.png"))
save_image(normalize_map(sg.map), os.path.join(args.out, "smoothgrad.png"))
save_image(overlay(image, s.map, alpha=0.6), os.path.join(args.out, "saliency_overlay.png"))
save_image(overlay(image, cam.map), os.path.join(args.out, "grad_cam.png"))
print(f"PNGs in {args.out}")
