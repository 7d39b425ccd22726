"""Adversarial examples: turn the cat into a 'burrito' within 8/255 per pixel; PGD vs EOT.

    python demos/adversarial.py [--steps 20] [--samples 8] [--out out/adversarial]

Targeted PGD maximizes log P(burrito | x_adv) subject to |x_adv - x| <= 8 pixel levels. The
example breaks when the image is rotated or zoomed; Expectation Over Transformation (Athalye
et al.) maximizes the AVERAGE log-probability over random transformations and survives them.
Both are scored under the same 100 random transformations.
"""
import argparse
import os

from fastconv.interpret import eot_evaluate, eot_pgd, pgd
from fastconv.interpret import transforms as T
from fastconv.io import save_image, to_uint8
from fastconv.models import efficientnet_lite0, imagenet_pixels, sample_image

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--samples", type=int, default=8)
ap.add_argument("--out", default=os.path.join("out", "adversarial"))
args = ap.parse_args()

model = efficientnet_lite0().fused()
x = imagenet_pixels(sample_image("chelsea"))                   # pixels 0..255, so eps=8 means 8/255
t = T.compose(T.random_affine(15, (0.9, 1.1), 10), T.brightness(20), T.gaussian_noise(5))

plain = pgd(model, x, "burrito", eps=8, steps=args.steps)
robust = eot_pgd(model, x, "burrito", eps=8, steps=args.steps, transforms=t, samples=args.samples)
print(plain, robust, sep="\n")
for name, res in (("pgd", plain), ("eot", robust)):
    rate = eot_evaluate(model, res, "burrito", t, n=100, seed=0)
    print(f"{name}: burrito under 100 random transformations: {rate:.0%}")
    save_image(to_uint8(res.x_adv), os.path.join(args.out, f"{name}_adversarial.png"))
    save_image(to_uint8(127.5 + 10 * (res.x_adv - x)), os.path.join(args.out, f"{name}_perturbation_x10.png"))
save_image(to_uint8(x), os.path.join(args.out, "original.png"))
print(f"PNGs in {args.out}")
