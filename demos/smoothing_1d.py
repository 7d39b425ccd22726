"""1-D convolution as smoothing: a noisy loss curve convolved with (1/3, 1/3, 1/3); valid, same, stride 2.

    python demos/smoothing_1d.py [--out out/smoothing_1d]
"""
import argparse
import os

from fastconv.interpret.figures import smoothing_1d, smoothing_1d_figure
from fastconv.io import save_image

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", default=os.path.join("out", "smoothing_1d"))
args = ap.parse_args()

r = smoothing_1d(n=40)                       # fastconv.conv1d with padding 'valid', 'same' and stride 2
for mode in ("valid", "same", "stride 2"):
    print(f"{mode:8s}: {len(r[mode][1])} values from {len(r['signal'])}")
save_image(smoothing_1d_figure(n=40), os.path.join(args.out, "smoothing_1d.png"))
print(f"PNG in {args.out}")
