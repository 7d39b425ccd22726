"""Receptive fields grow with depth (by k - 1 per layer) and much faster with stride (they double).

    python demos/receptive_field.py [--out out/receptive_field]
"""
import argparse
import os

from fastconv.interpret.figures import conv_stack, features_only, receptive_field_figure
from fastconv.io import save_image, to_uint8
from fastconv.models import efficientnet_lite0, imagenet_pixels, sample_image
from fastconv.receptive import receptive_field

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", default=os.path.join("out", "receptive_field"))
args = ap.parse_args()

for stride in (1, 2):
    net = conv_stack(depth=4, stride=stride)                    # 4 x (Conv2d 3x3 + ReLU)
    print(f"stride {stride}:\n{receptive_field(net, (1, 1, 128, 128))}\n")
    image = to_uint8(imagenet_pixels(sample_image("chelsea"), size=128))
    save_image(receptive_field_figure(image, net, scale=2), os.path.join(args.out, f"stack_stride{stride}.png"))

trunk = features_only(efficientnet_lite0(pretrained=False, input="normalized"))  # geometry only
fields = receptive_field(trunk, (1, 3, 224, 224))
print("EfficientNet-Lite0, last layer:", fields[-1])
layers = ["_conv_stem", "_blocks.1._depthwise_conv", "_blocks.3._depthwise_conv", "_blocks.5._depthwise_conv",
          "_blocks.8._depthwise_conv", "_blocks.15._depthwise_conv"]
image = to_uint8(imagenet_pixels(sample_image("chelsea")))
save_image(receptive_field_figure(image, trunk, layers=layers, scale=2), os.path.join(args.out, "lite0.png"))
print(f"PNGs in {args.out}")
