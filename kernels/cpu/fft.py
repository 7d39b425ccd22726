"""FFT convolution: the channel sums of a convolution as products of spectra.

The direct and GEMM forms spend kh*kw multiply-adds per output pixel and channel pair. After
one real 2-D FFT per input plane, kernel and output plane, the channel sum costs one complex
multiply-add per frequency, whatever the kernel size (the convolution theorem; Mathieu, Henaff
& LeCun 2014, "Fast Training of Convolutional Networks through FFTs"). The transforms cost
O(HW log HW) per plane, so this pays for large kernels only.

Every plane is zero-padded to one size (Hf, Wf) at least that of the padded input. The
circular correlations and convolutions below then never wrap around onto a value that is kept:

    forward         y[a] = sum_t xp[a + t] wd[t]         Y   = X  * conj(Wd)
    input gradient  dxp[a + t] += dy[a] wd[t]            DXp = DY * Wd
    weight gradient g[s] = sum_a xp[a + s] dy[a]         G   = X  * conj(DY)

with xp the padded input, wd the dilated kernel (zeros between its taps) and, at a stride
s > 1, y read at every s-th position and dy spread onto the stride-1 grid (zeros between).
``contract`` computes the sums over channels (and images) at every frequency.
"""
import functools

import numpy as np
import scipy.fft
from numba import prange

from ._common import FASTMATH, U, compile_both, for_work, parallel_kernel

#: Bytes of spectra and planes held at once: a batch is transformed in runs of images that fit,
#: so memory stays bounded whatever N is (the kernel spectra come on top, once per call).
CHUNK_BYTES = 64 * 2**20


@parallel_kernel(fastmath=FASTMATH)
def contract(a, b, out, sign):
    """out[p, q] = sum_k a[p, k] * b[q, k] at every frequency; ``sign`` -1 conjugates b.

    Spectra are stored as interleaved (re, im) floats: a (P, K, 2F), b (Q, K, 2F), out
    (P, Q, 2F). One task per (p, q): its F accumulators stay in L1 across the K sum.
    """
    P, K, F2 = a.shape
    Q = b.shape[0]
    for task in prange(P * Q):
        p = task // Q
        q = task % Q
        o = out[p, q]
        for f in range(F2):
            o[U(f)] = 0.0
        for k in range(K):
            x = a[p, k]
            y = b[q, k]
            for f in range(F2 // 2):
                r = U(2 * f)
                i = r + U(1)
                o[r] += x[r] * y[r] - sign * (x[i] * y[i])
                o[i] += x[i] * y[r] + sign * (x[r] * y[i])


def plane_shape(H, W, pads):
    """(Hf, Wf): the smallest sizes >= the padded input that SciPy's FFT transforms fast."""
    (lo_h, hi_h), (lo_w, hi_w) = pads
    return (scipy.fft.next_fast_len(H + lo_h + hi_h, real=True),
            scipy.fft.next_fast_len(W + lo_w + hi_w, real=True))


def _spectra(planes, shape, workers):
    """rfft2 of ``planes`` (..., h, w) zero-padded at the end to ``shape``: (..., 2F) floats."""
    z = scipy.fft.rfft2(planes, s=shape, axes=(-2, -1), workers=workers)
    return np.ascontiguousarray(z).reshape(z.shape[:-2] + (-1,)).view(planes.dtype)


def _planes(spec, shape, workers):
    """The inverse of ``_spectra``: (..., 2F) floats -> real planes (..., Hf, Wf)."""
    z = spec.view(np.complex64 if spec.dtype == np.float32 else np.complex128)
    return scipy.fft.irfft2(z.reshape(spec.shape[:-1] + (shape[0], shape[1] // 2 + 1)), s=shape,
                            axes=(-2, -1), workers=workers)


def _input_spectra(x, pads, shape, workers):
    """Spectra (N, C, 2F) of the padded input: low padding written, the high side by rfft2."""
    (lo_h, _), (lo_w, _) = pads
    N, C, H, W = x.shape
    if lo_h or lo_w:
        xp = np.zeros((N, C, H + lo_h, W + lo_w), x.dtype)
        xp[:, :, lo_h:, lo_w:] = x
        x = xp
    return _spectra(x, shape, workers)


@functools.lru_cache(maxsize=32)
def _dft(n: int, taps: int, step: int, half: bool, dtype):
    """E[f, t] = exp(-2 pi i f (t * step) / n): the DFT of ``taps`` samples ``step`` apart, for
    the frequencies f < n (``half``: f <= n // 2, those of a real FFT). Built in float64."""
    f = np.arange(n // 2 + 1 if half else n)
    e = np.exp(-2j * np.pi * np.outer(f, np.arange(taps) * step) / n)
    return e.astype(np.complex64 if np.dtype(dtype) == np.float32 else np.complex128)


def _kernel_spectra(w, dilation, shape):
    """Spectra (O, Cg, 2F) of the kernels placed (dilated) in (Hf, Wf) planes of zeros.

    A kernel has kh*kw nonzeros in Hf*Wf places, so its transform is two small products with
    DFT matrices, Eh (Hf, kh) @ w (kh, kw) @ Ew (kw, Wf/2+1), not two FFT passes over a plane
    of zeros (measured 2.6-3x faster; dilation is the matrices' sample spacing).
    """
    O, Cg, kh, kw = w.shape
    (Hf, Wf), (dh, dw) = shape, dilation
    eh, ew = _dft(Hf, kh, dh, False, w.dtype), _dft(Wf, kw, dw, True, w.dtype)
    rows = (w.reshape(O * Cg * kh, kw) @ ew.T).reshape(O * Cg, kh, -1)       # along the width
    z = np.matmul(eh, rows)                                                   # along the height
    return z.reshape(O, Cg, -1).view(w.dtype)


def _kernel_taps(spec, dilation, shape, kh, kw):
    """The inverse of ``_kernel_spectra``: the real planes of ``spec`` (P, 2F) read at the kh*kw
    (dilated) kernel taps only, by the same DFT matrices conjugated (no inverse FFT of planes).

    The half spectrum stands for its Hermitian mirror too: columns 0 < f < Wf/2 count twice.
    """
    (Hf, Wf), (dh, dw) = shape, dilation
    dtype = spec.dtype
    z = spec.view(np.complex64 if dtype == np.float32 else np.complex128).reshape(-1, Hf, Wf // 2 + 1)
    eh, ew = _dft(Hf, kh, dh, False, dtype), _dft(Wf, kw, dw, True, dtype)
    twice = np.full(Wf // 2 + 1, 2.0, dtype)
    twice[0] = 1.0
    if Wf % 2 == 0:
        twice[-1] = 1.0
    cols = np.matmul(eh.conj().T, z)                                          # (P, kh, Wf/2+1)
    g = np.matmul(cols * twice, ew.conj()).real                               # (P, kh, kw)
    return g * dtype.type(1.0 / (Hf * Wf))


def _channel_sums(a, b, groups, conj_b):
    """Per group g: out[:, g] = contract(a[:, g] (P, Kg), b[g] (Qg, Kg)), a (P, G*Kg, 2F), b (G*Qg, Kg, 2F)."""
    P, F2 = a.shape[0], a.shape[2]
    Qg, Kg = b.shape[0] // groups, b.shape[1]
    out = np.empty((P, groups * Qg, F2), a.dtype)
    sign = a.dtype.type(-1.0 if conj_b else 1.0)
    for g in range(groups):
        ag = a if groups == 1 else np.ascontiguousarray(a[:, g * Kg:(g + 1) * Kg])
        bg = b[g * Qg:(g + 1) * Qg]
        og = out if groups == 1 else np.empty((P, Qg, F2), a.dtype)
        for_work(contract, P * Qg * Kg * F2 * 2)(ag, bg, og, sign)
        if groups > 1:
            out[:, g * Qg:(g + 1) * Qg] = og
    return out


def _image_chunks(N, planes_per_image, shape, itemsize):
    """Runs of images whose spectra and planes (``planes_per_image`` of each) fit CHUNK_BYTES."""
    Hf, Wf = shape
    per_image = planes_per_image * (Hf * (Wf // 2 + 1) * 2 + Hf * Wf) * itemsize
    B = max(1, min(N, CHUNK_BYTES // max(per_image, 1)))
    return [(n0, min(N, n0 + B)) for n0 in range(0, N, B)]


def _spread(dy, stride):
    """dy onto the stride-1 grid, zeros between its samples (unchanged at stride 1)."""
    sh, sw = stride
    if sh == 1 and sw == 1:
        return dy
    N, O, Ho, Wo = dy.shape
    up = np.zeros((N, O, (Ho - 1) * sh + 1, (Wo - 1) * sw + 1), dy.dtype)
    up[:, :, ::sh, ::sw] = dy
    return up


def conv_forward(x, w, y, pads, stride, dilation, groups, workers):
    """y (N, O, Ho, Wo) = x (N, C, H, W) correlated with w (O, C/groups, kh, kw), written in place."""
    shape = plane_shape(x.shape[2], x.shape[3], pads)
    ws = _kernel_spectra(w, dilation, shape)
    Ho, Wo = y.shape[2], y.shape[3]
    sh, sw = stride
    for n0, n1 in _image_chunks(x.shape[0], x.shape[1] + y.shape[1], shape, x.itemsize):
        spec = _channel_sums(_input_spectra(x[n0:n1], pads, shape, workers), ws, groups, True)
        y[n0:n1] = _planes(spec, shape, workers)[:, :, :(Ho - 1) * sh + 1:sh, :(Wo - 1) * sw + 1:sw]


def conv_grad_input(dy, w, dx, pads, stride, dilation, groups, workers):
    """dx (N, C, H, W) = the transposed convolution of dy (N, O, Ho, Wo) with w, in place."""
    N, O = dy.shape[:2]
    H, W = dx.shape[2], dx.shape[3]
    shape = plane_shape(H, W, pads)
    wt = _kernel_spectra(w, dilation, shape)                              # (O, Cg, 2F)
    Og, Cg = O // groups, w.shape[1]
    wt = np.ascontiguousarray(wt.reshape(groups, Og, Cg, -1).transpose(0, 2, 1, 3)).reshape(groups * Cg, Og, -1)
    (lo_h, _), (lo_w, _) = pads
    for n0, n1 in _image_chunks(N, O + dx.shape[1], shape, dy.itemsize):
        spec = _channel_sums(_spectra(_spread(dy[n0:n1], stride), shape, workers), wt, groups, False)
        dx[n0:n1] = _planes(spec, shape, workers)[:, :, lo_h:lo_h + H, lo_w:lo_w + W]


def conv_grad_weight(x, dy, dwt, pads, stride, dilation, groups, workers):
    """dwt (O, C/groups, kh, kw) = the correlation of the padded x with dy, summed over images."""
    N, O = dy.shape[:2]
    C = x.shape[1]
    shape = plane_shape(x.shape[2], x.shape[3], pads)
    Og, Cg = O // groups, C // groups
    z = None
    for n0, n1 in _image_chunks(N, C + O, shape, x.itemsize):
        # per group: z[c, o] = sum_n X[n, c] conj(DY[n, o]): images are the contracted axis
        xt = np.ascontiguousarray(_input_spectra(x[n0:n1], pads, shape, workers).transpose(1, 0, 2))   # (C, n, 2F)
        dt = np.ascontiguousarray(_spectra(_spread(dy[n0:n1], stride), shape, workers).transpose(1, 0, 2))
        part = np.empty((Cg, O, xt.shape[2]), x.dtype)
        for g in range(groups):
            part[:, g * Og:(g + 1) * Og] = _channel_sums(xt[g * Cg:(g + 1) * Cg], dt[g * Og:(g + 1) * Og], 1, True)
        z = part if z is None else z + part
    kh, kw = dwt.shape[2], dwt.shape[3]
    taps = _kernel_taps(z.reshape(Cg * O, -1), dilation, shape, kh, kw)
    dwt[...] = taps.reshape(Cg, O, kh, kw).transpose(1, 0, 2, 3)


def warm(dtype) -> None:
    """Compile (or load from cache) the spectral contraction for ``dtype``."""
    a = np.ones((1, 2, 4), dtype)
    compile_both(contract, a, a, np.empty((1, 1, 4), dtype), dtype(-1.0))
