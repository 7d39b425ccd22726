"""Checkerboard artifacts (Odena et al., 2016): uneven overlap of transposed convolutions, in images and gradients.

    python demos/checkerboard.py [--out out/checkerboard]
"""
import argparse
import os

from fastconv.interpret.figures import checkerboard_figure, overlap_figure, overlap_map
from fastconv.io import save_image
from fastconv.models import efficientnet_lite0

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", default=os.path.join("out", "checkerboard"))
args = ap.parse_args()

print("kernel 3, stride 2, 1-D:", overlap_map(3, 2, 5, dims=1))   # 1 1 2 1 2 1 2 1 2 1 1
print("kernel 4, stride 2, 1-D:", overlap_map(4, 2, 5, dims=1))   # 1 1 2 2 2 2 2 2 2 2 1 1
print("kernel 3, stride 2, 2-D:\n", overlap_map(3, 2, 4))        # 1, 2 and 4
save_image(overlap_figure(), os.path.join(args.out, "overlap.png"))
save_image(checkerboard_figure(efficientnet_lite0().fused()), os.path.join(args.out, "checkerboard.png"))
print(f"PNGs in {args.out}")
