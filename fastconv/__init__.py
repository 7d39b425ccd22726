"""fastconv: readable, fast convolutions for learning, teaching and benchmarking CNNs.

Numba CPU kernels (and CuPy CUDA kernels) for direct, im2col-GEMM and transposed convolutions
with every gradient; a small autograd layer graph on them; and the interpretability tools of a
CNN course on that graph.

Example:
    >>> import numpy as np, fastconv
    >>> x = np.random.rand(2, 3, 16, 16).astype(np.float32)
    >>> w = np.random.rand(8, 3, 3, 3).astype(np.float32)
    >>> fastconv.conv2d(x, w, padding='same').shape
    (2, 8, 16, 16)
"""
from fastconv import _runtime  # noqa: F401  (threading layer and cache setup before numba loads)

try:
    import fastconv.kernels  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on how Python was started
    raise ImportError(
        f"fastconv was imported from {__path__[0]}, a source checkout in which kernels/ lies beside "
        f"fastconv/ instead of inside it. Install the project (pip install -e .) and import it from "
        f"outside the checkout, or run from another directory.") from exc
from fastconv import autotune, grad, nn, ops, optim
from fastconv.autograd import Tensor, gradcheck, no_grad
from fastconv.functional import conv1d, conv2d, conv_transpose1d, conv_transpose2d, pad
from fastconv.geometry import ConvGeometry, conv_geometry, output_shape, transposed_geometry
from fastconv.matrix import conv_matrix
from fastconv.receptive import receptive_field

__version__ = "0.1.0"

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "pad", "grad",
           "output_shape", "conv_geometry", "transposed_geometry", "ConvGeometry", "conv_matrix",
           "Tensor", "no_grad", "gradcheck", "nn", "ops", "optim", "receptive_field", "warm", "autotune"]


def warm() -> None:
    """Compile (or load from Numba's on-disk cache) every CPU kernel, for float32 and float64."""
    from fastconv.backends import cpu
    cpu.warm()
