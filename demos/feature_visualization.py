"""Feature visualization: maximize the class 'robin' of EfficientNet-Lite0, without and with regularization.

    python demos/feature_visualization.py [--steps 64] [--size 128] [--out out/feature_visualization]

Gradient ascent on the pixels of a 128x128 image (objective x parameterization x transforms,
as in Lucid). Without regularization the gradient's transposed convolutions paint
high-frequency noise; the L2 penalty dims it, Gaussian blur and the Laplacian-pyramid gradient
remove it, and Lucid's spectral (1/f) parameterization shows the bird's colours.
"""
import argparse
import os

from fastconv.interpret import objectives as O
from fastconv.interpret import param as P
from fastconv.interpret import regularizers as R
from fastconv.interpret.render import visualize
from fastconv.io import save_image
from fastconv.models import efficientnet_lite0

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--steps", type=int, default=64)
ap.add_argument("--size", type=int, default=128)
ap.add_argument("--out", default=os.path.join("out", "feature_visualization"))
args = ap.parse_args()

model = efficientnet_lite0().fused()            # takes RGB pixels 0..255
robin = O.class_logit("robin")                   # American robin, class 15
shape = (1, 3, args.size, args.size)
variants = {
    "none": [],
    "l2": [R.lp_penalty(2, weight=300.0)],
    "linf": [R.linf_penalty(weight=100.0, temperature=0.05)],
    "blur": [R.gaussian_blur(sigma=0.5, every=4)],
    "pyramid": [R.laplacian_pyramid_gradient(levels=4)],
}
for name, regs in variants.items():
    res = visualize(model, robin, shape, param=P.pixel_image(shape, decorrelate=True), regularizers=regs,
                    steps=args.steps, lr=0.2)
    save_image(res.image, os.path.join(args.out, f"robin_{name}.png"))
    print(f"{name:8s} logit {res.initial_value:6.2f} -> {res.final_value:6.2f}   "
          f"high-frequency share {R.high_frequency_share(res.pixels):.3f}")

res = visualize(model, robin, shape, param=P.fft_image(shape), steps=args.steps, lr=0.05)
save_image(res.image, os.path.join(args.out, "robin_fft.png"))
print(f"fft      logit {res.initial_value:6.2f} -> {res.final_value:6.2f}")

# one channel of a middle layer: objectives compose, e.g. channel(...) - 0.5 * channel(...)
res = visualize(model, O.channel("_blocks.8", 17), shape, param=P.fft_image(shape), steps=args.steps)
save_image(res.image, os.path.join(args.out, "channel_blocks8_17.png"))
print(f"PNGs in {args.out}")
