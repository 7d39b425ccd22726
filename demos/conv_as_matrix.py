"""The convolution as a matrix: C for a 4x4 input and a 3x3 kernel, and C^T = the transposed convolution.

    python demos/conv_as_matrix.py [--out out/conv_as_matrix]
"""
import argparse
import os

import numpy as np

import fastconv
from fastconv.interpret.figures import conv_matrix_example, conv_matrix_figure
from fastconv.io import save_image

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", default=os.path.join("out", "conv_as_matrix"))
args = ap.parse_args()

w = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)    # k_ij = 3 i + j + 1, to read C easily
C = fastconv.conv_matrix(w, (1, 4, 4))                          # scipy.sparse, 4 x 16
print("C =\n", C.toarray().astype(int))
ex = conv_matrix_example()
print("C x == conv2d(x):", np.allclose(ex["y_matrix"], ex["y_conv"]))
print("C^T v == conv_transpose2d(v):", np.allclose(ex["CTv"], ex["conv_transpose"]))
save_image(conv_matrix_figure(), os.path.join(args.out, "conv_matrix.png"))
print(f"PNG in {args.out}")
