"""Side-by-side benchmark of fastconv against PyTorch, SciPy and NumPy im2col.

What is compared (float32, NCHW, CPU, a fixed thread count, 2 by default):

* every fastconv algorithm ('auto' and each of the CPU backend's ``ALGOS``), called through the
  public functions (``fastconv.conv2d``, ``conv_transpose2d``, ``conv1d``, ``fastconv.grad``);
* PyTorch's ``torch.nn.functional`` convolutions (skipped with a note when torch is missing);
* NumPy im2col: a materialised column matrix (``sliding_window_view``) times the weights (BLAS);
* SciPy, the reference: ``scipy.signal.correlate`` (method 'direct' and 'fft') and
  ``scipy.ndimage.correlate`` on every 2-D (image, output channel, input channel) plane, summed
  over input channels. Where the whole tensor would take long, a subset of output planes is
  timed and the time extrapolated linearly (marked ``*``);
* EfficientNet-Lite0 (N1 224x224, forward, and forward + gradient w.r.t. the input):
  ``fastconv.models.efficientnet_lite0`` against the same network built here in torch from the
  same weights.

Cases are those of the project's ANCHORS.md (a1-a3, b, c, d, e, f1, f2, g1, g2, Lite0) plus
four scaling sweeps (batch, spatial size, channels, kernel size).

Timing: each measurement first waits (boundedly) for other processes to go quiet, runs the
function ``warmup`` times untimed (the first call, which may compile, is never timed), then
repeats it and reports the median and the minimum wall time, the number of repeats and the
share of the CPUs that *other* processes used meanwhile (``bg``, from /proc/stat). A
measurement disturbed by other load is repeated within a bounded budget, keeping the lowest
median. FLOP = 2 x multiply-adds of the nominal convolution (padded taps counted, skipped
strides not); forward + both gradients counts 3x.

Allocation policy: every library allocates its outputs on each call, as a user's code would;
fastconv keeps its im2col workspace between calls. glibc's ``mallopt`` is set so that freed
blocks below 32 MiB are reused instead of being returned to the OS (fresh pages cost about
3 us per 4 KiB on the VMs this was written on, which would otherwise swamp small cases).

Correctness: every result of every method is compared with a float64 NumPy reference (for
Lite0: with torch) and its maximum relative error ``max|a - ref| / max|ref|`` recorded;
errors above 1e-4 are flagged in the report.

Run ``python -m fastconv.bench --help`` (or ``fastconv bench``) for the options.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import fnmatch
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ERR_FLAG = 1e-4
NCPU = os.cpu_count() or 1

# ============================================================================ process policy
MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc's maximum on 64-bit
TRIM_THRESHOLD = 1 << 30


def set_malloc_policy(enable: bool = True) -> str:
    """Ask glibc to keep freed memory mapped; returns a sentence that states the policy."""
    if not enable:
        return "glibc malloc defaults (outputs above the mmap threshold are fresh mmaps)"
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(-3, MMAP_THRESHOLD) and libc.mallopt(-1, TRIM_THRESHOLD)  # M_MMAP/M_TRIM
    except (OSError, AttributeError):
        ok = False
    if not ok:
        return "malloc defaults (mallopt unavailable: not glibc)"
    return ("glibc mallopt(M_MMAP_THRESHOLD=32 MiB, M_TRIM_THRESHOLD=1 GiB): freed blocks below "
            "32 MiB are reused, not returned to the OS")


def _optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def setup_threads(n: int):
    """Set Numba's, the BLAS/OpenMP pools' and torch's thread counts to ``n``.

    Returns (description, restore): ``restore()`` puts the previous counts back.
    """
    import numba
    info = {"requested": n}
    undo = []
    prev = numba.get_num_threads()
    info["numba"] = min(n, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(info["numba"])
    undo.append(lambda: numba.set_num_threads(prev))
    tpc = _optional("threadpoolctl")
    if tpc is not None:
        limiter = tpc.threadpool_limits(limits=n)
        undo.append(limiter.restore_original_limits)
        info["method"] = "threadpoolctl"
        info["pools"] = [dict({k: p.get(k) for k in ("internal_api", "version", "num_threads",
                                                      "architecture", "threading_layer")},
                              owner=_pool_owner(p.get("filepath") or ""))
                         for p in tpc.threadpool_info()]
    else:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)
        info["method"] = ("environment variables (threadpoolctl missing: effective only for "
                          "libraries loaded after this point)")
        info["pools"] = []
    torch = _optional("torch")
    if torch is not None:
        tprev = torch.get_num_threads()
        torch.set_num_threads(n)
        undo.append(lambda: torch.set_num_threads(tprev))
        info["torch"] = torch.get_num_threads()

    def restore():
        for fn in reversed(undo):
            fn()
    return info, restore


def _pool_owner(path: str) -> str:
    """'numpy', 'scipy', 'torch'... : the package a thread-pool library was loaded from."""
    parts = path.replace(os.sep, "/").split("/")
    for part in reversed(parts[:-1]):
        name = part.split(".")[0]
        if name not in ("lib", "libs", "lib64", ""):
            return name
    return parts[-1] if parts else "?"


def versions() -> dict:
    import numba
    import fastconv
    v = {"python": platform.python_version(), "fastconv": fastconv.__version__,
         "numpy": np.__version__, "numba": numba.__version__, "machine": platform.machine(),
         "ncpu": NCPU}
    for mod in ("scipy", "torch", "matplotlib", "threadpoolctl"):
        m = _optional(mod)
        v[mod] = getattr(m, "__version__", None) if m else None
    try:
        with open("/proc/cpuinfo") as f:
            v["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        v["cpu"] = None
    return v


# ============================================================================ timing
def _cpu_busy_s():
    """Seconds of CPU time used by all processes since boot (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _foreign_share(b0, c0, wall):
    """Share of all CPUs used by other processes since (/proc/stat busy b0, own CPU time c0).

    None when unknown: no /proc/stat, or a window under 0.1 s (the counters tick every 10 ms).
    """
    b1 = _cpu_busy_s()
    if b0 is None or b1 is None or wall < 0.1:
        return None
    foreign = (b1 - b0) - (time.process_time() - c0)
    return round(min(1.0, max(0.0, foreign) / (wall * NCPU)), 3)


class Timer:
    """Median and min wall time of a function after warm-up, with the background CPU share.

    ``quiet_s`` bounds the total time spent waiting for other processes to go quiet before
    measurements, ``retry_s`` the total time spent re-measuring disturbed ones (other load only
    ever slows a measurement, so the attempt with the lowest median is kept).
    """

    def __init__(self, repeats=7, min_repeats=3, max_time=1.0, warmup=1, quiet_s=30.0, retry_s=30.0,
                 bg_limit=0.2):
        self.repeats, self.min_repeats, self.max_time, self.warmup = repeats, min_repeats, max_time, warmup
        self.quiet_left, self.retry_left, self.bg_limit = quiet_s, retry_s, bg_limit
        self.waited = 0.0

    def wait_quiet(self, per_call=1.0, window=0.2, thresh=0.15):
        """Sleep until other processes use < thresh of the CPUs (bounded); lets idle threads park."""
        t0 = time.perf_counter()
        while True:
            b0, c0 = _cpu_busy_s(), time.process_time()
            time.sleep(window)
            share = _foreign_share(b0, c0, window)
            spent = time.perf_counter() - t0
            if share is None or share < thresh or spent >= min(per_call, self.quiet_left):
                break
        self.quiet_left -= spent
        self.waited += spent

    def __call__(self, fn, warmup=None, scale=1.0, repeats=None) -> dict:
        best = None
        warmup = self.warmup if warmup is None else warmup
        for attempt in range(3):
            t0 = time.perf_counter()
            r = self._once(fn, warmup if attempt == 0 else 0, scale, repeats or self.repeats)
            if best is None or r["median"] < best["median"]:
                best = r
            spent = time.perf_counter() - t0
            if attempt:
                self.retry_left -= spent
            # a long measurement is not retried: it would eat the budget of many short ones
            if r["bg"] is None or r["bg"] <= self.bg_limit or spent > self.retry_left / 4:
                break
        best["attempts"] = attempt + 1
        return best

    def _once(self, fn, warmup, scale, repeats):
        if self.quiet_left > 0:
            self.wait_quiet()
        else:
            time.sleep(0.02)    # lets the previous library's worker threads park
        for _ in range(warmup):
            fn()
        ts = []
        b0, c0, w0 = _cpu_busy_s(), time.process_time(), time.perf_counter()
        while len(ts) < repeats:
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            ts.append(t1 - t0)
            if len(ts) >= self.min_repeats and t1 - w0 > self.max_time:
                break
        bg = _foreign_share(b0, c0, time.perf_counter() - w0)
        return {"median": statistics.median(ts) * scale, "min": min(ts) * scale, "n": len(ts), "bg": bg}


def pick_subset(run, total: int, target: float) -> int:
    """How many of ``total`` work units ``run(m)`` should do for one call to take ~target s."""
    run(1)
    t0 = time.perf_counter()
    run(1)
    one = time.perf_counter() - t0
    return int(max(1, min(total, target / max(one, 1e-7))))


def rel_err(a, ref) -> float:
    """max|a - ref| / max|ref| (tuples: the worst part)."""
    if isinstance(ref, (tuple, list)):
        return max(rel_err(x, r) for x, r in zip(a, ref))
    a = np.asarray(_to_numpy(a), dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(a - ref).max() / (np.abs(ref).max() + 1e-30))


def _to_numpy(a):
    """A NumPy array from an array, a torch tensor or a fastconv autograd Tensor."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach"):
        return np.asarray(a.detach().numpy())
    return np.asarray(a)


# ============================================================================ cases
@dataclass(frozen=True)
class Case:
    """One convolution (or model) to time. ``kind``: conv, convT, conv1d or lite0."""
    id: str
    kind: str
    N: int = 1
    Ci: int = 1
    Co: int = 1
    H: int = 1
    W: int = 1
    k: int = 1
    s: int = 1
    p: int = 0
    groups: int = 1
    L: int = 0
    grad: bool = False      # forward + gradient w.r.t. input and weight (lite0: input only)
    title: str = ""

    @property
    def out_hw(self):
        if self.kind == "convT":
            return ((self.H - 1) * self.s - 2 * self.p + self.k,) * 2
        return ((self.H + 2 * self.p - self.k) // self.s + 1, (self.W + 2 * self.p - self.k) // self.s + 1)

    @property
    def flops(self) -> float:
        if self.kind == "conv1d":
            f = 2 * (self.L - self.k + 1) * self.k
        elif self.kind == "lite0":
            return lite0_flops(self.H) * self.N * (2 if self.grad else 1)
        elif self.kind == "convT":
            f = 2 * self.N * self.Ci * self.H * self.W * self.Co * self.k * self.k
        else:
            Ho, Wo = self.out_hw
            f = 2 * self.N * self.Co * Ho * Wo * (self.Ci // self.groups) * self.k * self.k
        return f * (3 if self.grad else 1)

    @property
    def multichannel_2d(self):
        return self.kind in ("conv", "convT") and not self.grad

    def tiny(self) -> "Case":
        """A shrunk copy (for smoke tests): same kind and id, a few kilo-FLOP."""
        if self.kind == "lite0":
            return self
        if self.kind == "conv1d":
            return dataclasses.replace(self, L=min(self.L, 2000), k=min(self.k, 11),
                                       title=f"tiny: 1-D L={min(self.L, 2000)} K={min(self.k, 11)}")
        ci, co = min(self.Ci, 6), min(self.Co, 5)
        if self.groups > 1:
            ci = co = min(self.Ci, 6)
        hw = min(self.H, 12)
        return dataclasses.replace(self, N=1, Ci=ci, Co=co, H=hw, W=hw, groups=ci if self.groups > 1 else 1,
                                   title=f"tiny: {self.kind} {self.k}x{self.k} s{self.s} N1 {ci}->{co} {hw}x{hw}")


def _c(id, title, N, Ci, Co, H, k, s=1, p=0, groups=1, kind="conv", grad=False):
    return Case(id, kind, N, Ci, Co, H, H, k, s, p, groups, grad=grad, title=title)


ANCHOR_CASES = [
    _c("a1", "3x3 s1 N8 64->64 56x56", 8, 64, 64, 56, 3, 1, 1),
    _c("a2", "3x3 s1 N1 3->64 224x224", 1, 3, 64, 224, 3, 1, 1),
    _c("a3", "3x3 s1 N8 256->256 14x14", 8, 256, 256, 14, 3, 1, 1),
    _c("b", "7x7 s2 p3 N8 3->64 224->112", 8, 3, 64, 224, 7, 2, 3),
    _c("c", "1x1 N8 256->64 28x28", 8, 256, 64, 28, 1),
    _c("d", "depthwise 3x3 N8 C128 56x56", 8, 128, 128, 56, 3, 1, 1, groups=128),
    _c("e", "transposed 4x4 s2 p1 N8 64->32 28->56", 8, 64, 32, 28, 4, 2, 1, kind="convT"),
    Case("f1", "conv1d", L=1_000_000, k=3, title="1-D L=1e6 K=3 valid"),
    Case("f2", "conv1d", L=100_000, k=101, title="1-D L=1e5 K=101 valid"),
    _c("g1", "a1 forward + grad input + grad weight", 8, 64, 64, 56, 3, 1, 1, grad=True),
    _c("g2", "e forward + grad input + grad weight", 8, 64, 32, 28, 4, 2, 1, kind="convT", grad=True),
    Case("lite0", "lite0", N=1, Ci=3, H=224, W=224, title="EfficientNet-Lite0 N1 224x224 forward"),
    Case("lite0_grad", "lite0", N=1, Ci=3, H=224, W=224, grad=True,
         title="EfficientNet-Lite0 forward + grad to input"),
]


@dataclass
class Sweep:
    """A family of cases that differ in one parameter, for time-versus-size charts."""
    id: str
    title: str
    param: str
    values: list
    quick_values: list
    base: dict = field(default_factory=dict)

    def case(self, v) -> Case:
        kw = dict(self.base)
        if self.param == "C":
            kw.update(Ci=v, Co=v)
        elif self.param == "k":
            kw.update(k=v, p=v // 2)
        elif self.param == "H":
            kw.update(H=v, W=v)
        else:
            kw[self.param] = v
        return Case(f"{self.id}={v}", "conv", title=f"{self.title}, {self.param}={v}", **kw)


SWEEPS = [
    Sweep("batch", "3x3 s1 p1 64->64 28x28", "N", [1, 2, 4, 8, 16, 32, 64], [1, 4, 16, 64],
          dict(Ci=64, Co=64, H=28, W=28, k=3, p=1)),
    Sweep("spatial", "3x3 s1 p1 N1 32->32", "H", [14, 28, 56, 112, 224], [14, 56, 224],
          dict(N=1, Ci=32, Co=32, k=3, p=1)),
    Sweep("channels", "3x3 s1 p1 N1 C->C 28x28", "C", [16, 32, 64, 128, 256, 512], [16, 64, 256, 512],
          dict(N=1, H=28, W=28, k=3, p=1)),
    Sweep("kernel", "k x k s1 'same' N1 16->16 64x64", "k", [1, 3, 5, 7, 11, 15, 21, 31], [1, 3, 7, 15, 31],
          dict(N=1, Ci=16, Co=16, H=64, W=64)),
]


def make_data(case: Case, rng, dtype=np.float32) -> dict:
    """Input, weight and (for gradient cases) output gradient of a case."""
    def randn(*shape):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if case.kind == "conv1d":
        w = np.full((1, 1, 3), 1 / 3, dtype) if case.k == 3 else randn(1, 1, case.k)
        return {"x": randn(1, 1, case.L), "w": w}
    if case.kind == "lite0":
        return {"x": randn(case.N, 3, case.H, case.W)}
    if case.kind == "convT":
        w = randn(case.Ci, case.Co, case.k, case.k)
    else:
        w = randn(case.Co, case.Ci // case.groups, case.k, case.k)
    d = {"x": randn(case.N, case.Ci, case.H, case.W), "w": w}
    if case.grad:
        d["gy"] = randn(case.N, case.Co, *case.out_hw)
    return d


# ============================================================================ runners
# Each builder returns a zero-argument function computing the case's result (an array, or a
# tuple (y, grad_input, grad_weight) for gradient cases).
def fastconv_fn(case: Case, d: dict, algo: str):
    import fastconv
    x, w = d["x"], d.get("w")
    s, p, g = case.s, case.p, case.groups
    if case.kind == "conv1d":
        return lambda: fastconv.conv1d(x, w, algo=algo)
    if case.kind == "convT" and not case.grad:
        return lambda: fastconv.conv_transpose2d(x, w, stride=s, padding=p, algo=algo)
    if case.kind == "conv" and not case.grad:
        return lambda: fastconv.conv2d(x, w, stride=s, padding=p, groups=g, algo=algo)
    gy, G = d["gy"], fastconv.grad
    if case.kind == "conv":
        return lambda: (fastconv.conv2d(x, w, stride=s, padding=p, groups=g, algo=algo),
                        G.conv2d_input(x.shape, w, gy, stride=s, padding=p, groups=g, algo=algo),
                        G.conv2d_weight(x, w.shape, gy, stride=s, padding=p, groups=g, algo=algo))
    return lambda: (fastconv.conv_transpose2d(x, w, stride=s, padding=p, algo=algo),
                    G.conv_transpose2d_input(x.shape, w, gy, stride=s, padding=p, algo=algo),
                    G.conv_transpose2d_weight(x, w.shape, gy, stride=s, padding=p, algo=algo))


def fastconv_auto_algo(case: Case) -> str | None:
    """The algorithm ``algo='auto'`` resolves to for the case's forward op."""
    from fastconv.backends import cpu
    from fastconv.geometry import conv_geometry, transposed_geometry
    if case.kind == "lite0":
        return None
    if case.kind == "conv1d":
        geom = conv_geometry((1, 1, case.L), (1, 1, case.k), 1, 0, 1, 1, spatial_dims=1)
    elif case.kind == "convT":
        geom = transposed_geometry((case.N, case.Ci, case.H, case.W), (case.Ci, case.Co, case.k, case.k),
                                   case.s, case.p, 0, 1, 1, spatial_dims=2)
    else:
        geom = conv_geometry((case.N, case.Ci, case.H, case.W),
                             (case.Co, case.Ci // case.groups, case.k, case.k),
                             case.s, case.p, 1, case.groups, spatial_dims=2)
    return cpu.choose_algo(geom)


def torch_fn(case: Case, d: dict):
    import torch
    import torch.nn.functional as F
    x, w = torch.from_numpy(d["x"]), torch.from_numpy(d["w"])
    s, p, g = case.s, case.p, case.groups
    if case.kind == "conv1d":
        return lambda: F.conv1d(x, w)
    op = F.conv2d if case.kind == "conv" else F.conv_transpose2d
    kw = dict(stride=s, padding=p, groups=g)
    if not case.grad:
        def fwd():
            with torch.no_grad():
                return op(x, w, **kw)
        return fwd
    xg, wg, gy = x.clone().requires_grad_(True), w.clone().requires_grad_(True), torch.from_numpy(d["gy"])

    def fwd_bwd():
        xg.grad = wg.grad = None
        y = op(xg, wg, **kw)
        y.backward(gy)
        return y, xg.grad, wg.grad
    return fwd_bwd


# ---------------------------------------------------------------------------- NumPy im2col
def _pad2(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def np_im2col(xp, k, s):
    """(N, C, Hp, Wp) -> (N, C*k*k, Ho*Wo): the materialised column matrix."""
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    N, C, Ho, Wo = win.shape[:4]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * k * k, Ho * Wo), Ho, Wo


def np_col2im(cols, shape, k, s, Ho, Wo):
    """Adjoint of np_im2col: scatter-add (N, C*k*k, Ho*Wo) into a zero (N, C, Hp, Wp)."""
    N, C = shape[:2]
    cols = cols.reshape(N, C, k, k, Ho, Wo)
    out = np.zeros(shape, cols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += cols[:, :, i, j]
    return out


def np_conv2d(x, w, s, p, groups=1):
    N, C = x.shape[:2]
    O, Cg, k, _ = w.shape
    cols, Ho, Wo = np_im2col(_pad2(x, p), k, s)
    cols = cols.reshape(N, groups, Cg * k * k, Ho * Wo)
    return (w.reshape(groups, O // groups, -1) @ cols).reshape(N, O, Ho, Wo)


def np_conv_transpose2d(x, w, s, p):
    N, Ci, H, W = x.shape
    Co, k = w.shape[1], w.shape[2]
    cols = w.reshape(Ci, -1).T @ x.reshape(N, Ci, H * W)
    full = np_col2im(cols, (N, Co, (H - 1) * s + k, (W - 1) * s + k), k, s, H, W)
    return full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]


def np_conv2d_fwd_bwd(x, w, gy, s, p):
    N, C, H, W = x.shape
    O, _, k, _ = w.shape
    xp = _pad2(x, p)
    cols, Ho, Wo = np_im2col(xp, k, s)
    wm = w.reshape(O, -1)
    y = (wm @ cols).reshape(N, O, Ho, Wo)
    g = gy.reshape(N, O, Ho * Wo)
    gw = np.tensordot(g, cols, axes=([0, 2], [0, 2])).reshape(w.shape)
    gx = np_col2im(wm.T @ g, xp.shape, k, s, Ho, Wo)[:, :, p:p + H, p:p + W]
    return y, gx, gw


def np_conv_transpose2d_fwd_bwd(x, w, gy, s, p):
    N, Ci, H, W = x.shape
    k = w.shape[2]
    y = np_conv_transpose2d(x, w, s, p)
    colsg, _, _ = np_im2col(_pad2(gy, p), k, s)
    gx = (w.reshape(Ci, -1) @ colsg).reshape(x.shape)
    gw = np.tensordot(x.reshape(N, Ci, H * W), colsg, axes=([0, 2], [0, 2])).reshape(w.shape)
    return y, gx, gw


def numpy_fn(case: Case, d: dict):
    x, w, s, p = d["x"], d.get("w"), case.s, case.p
    if case.kind == "conv1d":
        return lambda: (sliding_window_view(x[0, 0], case.k) @ w[0, 0])[None, None]
    if case.grad:
        f = np_conv2d_fwd_bwd if case.kind == "conv" else np_conv_transpose2d_fwd_bwd
        return lambda: f(x, w, d["gy"], s, p)
    if case.kind == "convT":
        return lambda: np_conv_transpose2d(x, w, s, p)
    return lambda: np_conv2d(x, w, s, p, case.groups)


def reference(case: Case, d: dict):
    """The float64 NumPy result of a case (np.correlate for 1-D)."""
    d64 = {k: v.astype(np.float64) for k, v in d.items()}
    if case.kind == "conv1d":
        return np.correlate(d64["x"][0, 0], d64["w"][0, 0], mode="valid")[None, None]
    return numpy_fn(case, d64)()


# ---------------------------------------------------------------------------- SciPy per plane
def _ndimage_full_offset(k):
    """Offset o with ndimage.convolve(pad(a, k-1))[o:o+n+k-1] == signal.convolve(a, mode='full')."""
    from scipy import ndimage, signal
    rng = np.random.default_rng(1)
    a, kk = rng.standard_normal((7, 7)), rng.standard_normal((k, k))
    full = signal.convolve(a, kk, mode="full")
    nd = ndimage.convolve(np.pad(a, k - 1), kk, mode="constant")
    for off in range(2 * k):
        sl = nd[off:off + full.shape[0], off:off + full.shape[1]]
        if sl.shape == full.shape and np.allclose(sl, full):
            return off
    raise RuntimeError("could not align ndimage.convolve with the full convolution")


def scipy_units(case: Case, d: dict, method: str):
    """(total, run) for a 2-D case: run(m) computes the first m output planes (n, o) with SciPy.

    method: 'direct' or 'fft' (scipy.signal.correlate, convolve for transposed) or 'ndimage'.
    Stride-2 forward references compute the stride-1 result and subsample (as a SciPy user
    must), so they do about s*s times the nominal work. Returns None where a method does not
    apply to the case.
    """
    from scipy import ndimage, signal
    x, w, s, p, k = d["x"], d["w"], case.s, case.p, case.k
    N, Ci, Co = case.N, case.Ci, case.Co
    units = [(n, o) for n in range(N) for o in range(Co)]
    if case.kind == "conv":
        if method == "ndimage" and p != k // 2:
            return None
        xp = _pad2(x, p)
        Cg = Ci // case.groups

        def plane(n, o):
            acc = 0
            for cg in range(Cg):
                c = (o // (Co // case.groups)) * Cg + cg
                if method == "ndimage":
                    acc = acc + ndimage.correlate(x[n, c], w[o, cg], mode="constant")
                else:
                    acc = acc + signal.correlate(xp[n, c], w[o, cg], mode="valid", method=method)
            return acc[::s, ::s] if s > 1 else acc
    else:   # transposed: zero-dilate the input, full convolution, crop p
        Ho, Wo = case.out_hw
        Hd = (case.H - 1) * s + 1
        xd = np.zeros((N, Ci, Hd, Hd), x.dtype)
        xd[:, :, ::s, ::s] = x
        if method == "ndimage":
            xd = _pad2(xd, k - 1)
            off = _ndimage_full_offset(k) + p

        def plane(n, o):
            acc = 0
            for c in range(Ci):
                if method == "ndimage":
                    acc = acc + ndimage.convolve(xd[n, c], w[c, o], mode="constant")[off:off + Ho, off:off + Wo]
                else:
                    acc = acc + signal.convolve(xd[n, c], w[c, o], mode="full", method=method)[p:p + Ho, p:p + Wo]
            return acc
    return len(units), lambda m: [plane(n, o) for n, o in units[:m]]


def scipy_1d_fns(case: Case, d: dict) -> dict:
    from scipy import ndimage, signal
    x, w, K = d["x"][0, 0], d["w"][0, 0], case.k
    n = x.size - K + 1
    return {"scipy direct": lambda: signal.correlate(x, w, mode="valid", method="direct"),
            "scipy fft": lambda: signal.correlate(x, w, mode="valid", method="fft"),
            "ndimage": lambda: ndimage.correlate1d(x, w, mode="constant")[(K - 1) // 2:(K - 1) // 2 + n],
            "np.correlate": lambda: np.correlate(x, w, mode="valid")}


# ---------------------------------------------------------------------------- EfficientNet-Lite0
# (repeats, kernel, first stride, expand ratio, output channels) per stage; see EFFICIENTNET_LITE0.md
LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def lite0_blocks():
    """(index, in channels, out channels, kernel, stride, expand ratio) of every MBConv block."""
    cin, i = 32, 0
    for reps, k, s, e, cout in LITE0_STAGES:
        for r in range(reps):
            yield i, cin, cout, k, s if r == 0 else 1, e
            cin, i = cout, i + 1


def lite0_flops(hw=224) -> float:
    """2 x multiply-adds of the convolutions and the classifier for one hw x hw image."""
    size = -(-hw // 2)
    macs = size * size * 32 * 27
    for _, cin, cout, k, s, e in lite0_blocks():
        mid = cin * e
        if e != 1:
            macs += size * size * cin * mid
        size = -(-size // s)
        macs += size * size * mid * k * k + size * size * mid * cout
    macs += size * size * 320 * 1280 + 1280 * 1000
    return 2.0 * macs


def _same_pad(x, k, s):
    """TensorFlow SAME padding (low, high) of the last two axes, applied with F.pad."""
    import torch.nn.functional as F

    def lohi(n):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    (t, b), (l, r) = lohi(x.shape[-2]), lohi(x.shape[-1])
    return F.pad(x, (l, r, t, b)) if (t or b or l or r) else x


def torch_lite0(state: dict):
    """EfficientNet-Lite0 inference as a torch function of x (N, 3, H, W), from a state dict."""
    import torch
    import torch.nn.functional as F
    P = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()
         if isinstance(v, np.ndarray) and v.ndim > 0}

    def conv_bn(x, conv, bn, k, s=1, groups=1, act=True):
        x = F.conv2d(_same_pad(x, k, s), P[conv + ".weight"], stride=s, groups=groups)
        x = F.batch_norm(x, P[bn + ".running_mean"], P[bn + ".running_var"], P[bn + ".weight"],
                         P[bn + ".bias"], training=False, eps=1e-3)
        return F.relu6(x) if act else x

    blocks = list(lite0_blocks())

    def forward(x):
        x = conv_bn(x, "_conv_stem", "_bn0", 3, 2)
        for i, cin, cout, k, s, e in blocks:
            b, h = f"_blocks.{i}.", x
            if e != 1:
                h = conv_bn(h, b + "_expand_conv", b + "_bn0", 1)
            h = conv_bn(h, b + "_depthwise_conv", b + "_bn1", k, s, groups=h.shape[1])
            h = conv_bn(h, b + "_project_conv", b + "_bn2", 1, act=False)
            x = h + x if (s == 1 and cin == cout) else h
        x = conv_bn(x, "_conv_head", "_bn1", 1)
        return F.linear(x.mean((2, 3)), P["_fc.weight"], P["_fc.bias"])
    return forward


def lite0_torch_fn(case: Case, d: dict, state: dict):
    """(fn, target): torch Lite0 forward, or forward + gradient of the top logit w.r.t. the input."""
    import torch
    net = torch_lite0(state)
    x = torch.from_numpy(d["x"])
    if not case.grad:
        def fwd():
            with torch.no_grad():
                return net(x)
        return fwd, None
    with torch.no_grad():
        target = int(net(x)[0].argmax())

    def fwd_grad():
        xg = x.clone().requires_grad_(True)
        net(xg)[0, target].backward()
        return xg.grad
    return fwd_grad, target


def lite0_fastconv_fn(case: Case, d: dict, target: int | None):
    """fastconv's EfficientNet-Lite0 on the same input (raises ImportError/AttributeError when absent).

    ``efficientnet_lite0(pretrained=True, input='normalized')`` takes the same (pixel - 127) / 128
    input as the torch network; the gradient is that of the ``target`` logit. As a user runs it
    for inference and attribution: BatchNorm folded (``.fused()``) and the weights frozen, so only
    the input gradient is computed, as on the torch side (whose weights are plain tensors).
    """
    from fastconv.models import efficientnet_lite0
    from fastconv.autograd import Tensor, no_grad
    model = efficientnet_lite0(pretrained=True, input="normalized").fused()
    for p in model.parameters():
        p.requires_grad = False
    x = d["x"]

    def fwd():
        with no_grad():
            return _to_numpy(model(Tensor(x)))
    if not case.grad:
        return fwd
    if target is None:
        target = int(np.argmax(fwd()[0]))

    def fwd_grad():
        t = Tensor(x, requires_grad=True)
        y = model(t)
        seed = np.zeros(y.shape, x.dtype)
        seed[0, target] = 1
        y.backward(seed)
        return t.grad
    return fwd_grad


# ============================================================================ running
@dataclass
class Config:
    quick: bool = False
    tiny: bool = False
    threads: int = 2
    scipy: bool = True
    torch: bool = True
    scipy_target: float = 0.25      # seconds per timed SciPy subset call
    case_patterns: tuple = ()
    sweeps: tuple | None = None     # None: all sweeps; () none
    first_call: bool = True


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


class Runner:
    """Runs cases and sweeps under one Timer; collects a JSON-able result dictionary."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        q = cfg.quick or cfg.tiny
        self.timer = Timer(repeats=5 if q else 15, min_repeats=3 if q else 5, max_time=0.4 if q else 2.0,
                           warmup=1 if q else 2, quiet_s=0 if cfg.tiny else (30 if q else 90),
                           retry_s=0 if cfg.tiny else (45 if q else 120))
        self.torch = _optional("torch") if cfg.torch else None
        self.scipy = _optional("scipy") if cfg.scipy else None
        from fastconv.backends import cpu
        self.algos = ["auto", *cpu.ALGOS]
        self.notes = []

    def _time(self, fn, warmup=None, **kw):
        t0 = time.perf_counter()
        out = fn()                  # first call: compile / plan, never timed
        if time.perf_counter() - t0 > 0.5:
            warmup = 0              # a slow call is its own warm-up
        r = self.timer(fn, warmup=warmup, **kw)
        return out, r

    # ---------------------------------------------------------------- one case
    def run_case(self, case: Case) -> dict:
        if case.kind == "lite0":
            return self.run_lite0(case)
        rng = np.random.default_rng(0)
        d = make_data(case, rng)
        ref = reference(case, d)
        res = {"case": dataclasses.asdict(case), "flops": case.flops, "auto_algo": fastconv_auto_algo(case),
               "results": {}}
        R = res["results"]
        R.update(self.time_engines(case, d, ref))
        if self.scipy is not None and not case.grad:
            if case.kind == "conv1d":
                for name, fn in scipy_1d_fns(case, d).items():
                    out, r = self._time(fn)
                    R[name] = dict(r, err=rel_err(out[None, None], ref))
            else:
                for method in ("direct", "fft", "ndimage"):
                    r = self.time_scipy(case, d, method, ref)
                    if r is not None:
                        R["scipy " + method if method != "ndimage" else "ndimage"] = r
        return res

    def time_scipy(self, case, d, method, ref, target=None):
        got = scipy_units(case, d, method)
        if got is None:
            return None
        total, run = got
        m = pick_subset(run, total, target or self.cfg.scipy_target)
        planes = run(min(m, 2))
        err = max(rel_err(pl, ref[u // case.Co, u % case.Co]) for u, pl in enumerate(planes))
        r = self.timer(lambda: run(m), warmup=0, scale=total / m, repeats=3)
        return dict(r, err=err, extrapolated=m < total, subset=f"{m}/{total}")

    def time_engines(self, case: Case, d: dict, ref) -> dict:
        """Every fastconv algorithm, torch (when present) and NumPy im2col on one case, with errors."""
        R = {}
        for algo in self.algos:
            out, r = self._time(fastconv_fn(case, d, algo))
            R[f"fastconv {algo}"] = dict(r, err=rel_err(out, ref))
        if self.torch is not None:
            out, r = self._time(torch_fn(case, d), warmup=3)
            R["torch"] = dict(r, err=rel_err(out, ref))
        out, r = self._time(numpy_fn(case, d))
        R["numpy im2col"] = dict(r, err=rel_err(out, ref))
        return R

    def run_lite0(self, case: Case) -> dict:
        res = {"case": dataclasses.asdict(case), "flops": case.flops, "auto_algo": None, "results": {}}
        R, d = res["results"], make_data(case, np.random.default_rng(0))
        ref, target = None, None
        if self.torch is not None:
            try:
                from fastconv.models import efficientnet_lite0_weights_path, load_torch_weights
                state = load_torch_weights(efficientnet_lite0_weights_path())
            except ImportError as exc:
                res["note"] = f"skipped: {exc}"
                return res
            fn, target = lite0_torch_fn(case, d, state)
            ref, r = self._time(fn, warmup=2)
            ref = _to_numpy(ref)
            R["torch"] = dict(r, err=0.0)
        try:
            fn = lite0_fastconv_fn(case, d, target)
        except (ImportError, AttributeError) as exc:
            res["note"] = f"fastconv side skipped: fastconv.models.efficientnet_lite0 unavailable ({exc})"
            return res
        try:
            out, r = self._time(fn, warmup=1)
        except Exception as exc:   # an API mismatch must not sink the whole report
            res["note"] = f"fastconv side failed: {type(exc).__name__}: {exc}"
            return res
        R["fastconv auto"] = dict(r, err=rel_err(out, ref) if ref is not None else None)
        return res

    # ---------------------------------------------------------------- sweeps
    def run_sweep(self, sw: Sweep) -> dict:
        values = sw.quick_values if (self.cfg.quick or self.cfg.tiny) else sw.values
        if self.cfg.tiny:
            values = values[:2]
        points = []
        for v in values:
            case = sw.case(v)
            if self.cfg.tiny:
                case = case.tiny()
            d = make_data(case, np.random.default_rng(0))
            ref = reference(case, d)
            R = self.time_engines(case, d, ref)
            if self.scipy is not None and sw.id == "kernel":
                R["scipy fft"] = self.time_scipy(case, d, "fft", ref, target=self.cfg.scipy_target / 2)
            points.append({"value": v, "case": dataclasses.asdict(case), "flops": case.flops,
                           "auto_algo": fastconv_auto_algo(case), "results": R})
        return {"id": sw.id, "title": sw.title, "param": sw.param, "points": points}

    # ---------------------------------------------------------------- everything
    def run(self) -> dict:
        # load every library with a thread pool first (SciPy's OpenBLAS serves Numba's np.dot),
        # so that the limits below reach, and the report lists, all of them
        if self.scipy is not None:
            import scipy.linalg.cython_blas  # noqa: F401
        import fastconv
        fastconv.warm()             # load (or compile) every kernel before any timing
        threads, restore = setup_threads(self.cfg.threads)
        try:
            return self._run(threads)
        finally:
            restore()

    def _run(self, threads) -> dict:
        t0 = time.perf_counter()
        cfg = self.cfg
        out = {"meta": dict(self.meta(), threads=threads), "cases": {}, "sweeps": {}}
        for case in select_cases(cfg.case_patterns):
            if cfg.tiny:
                case = case.tiny()
            if case.kind == "lite0" and cfg.tiny:
                continue
            out["cases"][case.id] = self.run_case(case)
            _log(f"  {case.id:12s} done at {time.perf_counter() - t0:6.1f} s")
        for sw in SWEEPS:
            if cfg.sweeps is None or sw.id in cfg.sweeps:
                out["sweeps"][sw.id] = self.run_sweep(sw)
                _log(f"  sweep {sw.id:8s} done at {time.perf_counter() - t0:6.1f} s")
        if not cfg.tiny:
            out["meta"]["blas_ceiling"] = self.blas_ceiling()
        if cfg.first_call:
            out["first_call"] = first_call_times()
            _log(f"  first call   done at {time.perf_counter() - t0:6.1f} s")
        import numba
        m = out["meta"]
        m["threads"]["numba_threading_layer"] = numba.threading_layer()
        m["loadavg_end"] = _loadavg()
        m["waited_quiet_s"] = round(self.timer.waited, 1)
        m["total_s"] = round(time.perf_counter() - t0, 1)
        out["bars"] = evaluate_bars(out)
        return out

    def meta(self) -> dict:
        cfg = self.cfg
        return {"versions": versions(), "malloc": set_malloc_policy.policy, "dtype": "float32", "layout": "NCHW",
                "mode": "tiny" if cfg.tiny else ("quick" if cfg.quick else "full"),
                "timer": {"repeats": self.timer.repeats, "min_repeats": self.timer.min_repeats,
                          "max_time_s": self.timer.max_time, "warmup": self.timer.warmup},
                "scipy_target_s": cfg.scipy_target, "loadavg_start": _loadavg(),
                "torch_missing": cfg.torch and self.torch is None,
                "date": time.strftime("%Y-%m-%d %H:%M")}

    def blas_ceiling(self, n=2048) -> dict:
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        r = self.timer(lambda: a @ a, warmup=1, repeats=3)
        return dict(r, gflops=2 * n ** 3 / r["median"] / 1e9, what=f"numpy float32 matmul {n}^3")


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


set_malloc_policy.policy = "not set"


def select_cases(patterns=()) -> list:
    """Anchor cases whose id matches one of the fnmatch ``patterns`` (all when empty)."""
    if not patterns:
        return list(ANCHOR_CASES)
    return [c for c in ANCHOR_CASES if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


_FIRST_CALL = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import fastconv
t1 = time.perf_counter()
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 3, 32, 32), dtype=np.float32)
w = rng.standard_normal((8, 3, 3, 3), dtype=np.float32)
fastconv.conv2d(x, w, padding=1)
t2 = time.perf_counter()
x = rng.standard_normal((1, 32, 32, 32), dtype=np.float32)
w = rng.standard_normal((32, 32, 3, 3), dtype=np.float32)
fastconv.conv2d(x, w, padding=1)
t3 = time.perf_counter()
print("JSON:" + json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1, "second_algo_first_call_s": t3 - t2}))
"""


def first_call_times() -> dict:
    """Import time and first conv2d calls in a fresh process whose Numba cache is warm.

    The script runs twice; the first run fills the cache (if needed), the second is reported.
    The first call goes through the direct kernel (3 -> 8 channels), the second through im2col.
    """
    res = {}
    for attempt in ("fill cache", "measured"):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", _FIRST_CALL], capture_output=True, text=True,
                           timeout=600, env=dict(os.environ))
        wall = time.perf_counter() - t0
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("JSON:")), None)
        if line is None:
            return {"error": p.stderr[-1000:]}
        res = dict(json.loads(line[5:]), process_wall_s=wall)
    return res


# ============================================================================ bars
def _median(res, case_id, method):
    r = res["cases"].get(case_id, {}).get("results", {}).get(method)
    return r["median"] if r else None


def best_scipy(results: dict):
    """(method, timing) of the fastest SciPy / np.correlate entry, or (None, None)."""
    keys = [k for k in results if k.startswith("scipy") or k in ("ndimage", "np.correlate")]
    keys = [k for k in keys if results[k]]
    if not keys:
        return None, None
    k = min(keys, key=lambda k: results[k]["median"])
    return k, results[k]


BARS_TORCH = [("a1", 1.25), ("a2", 1.25), ("a3", 1.25), ("b", 1.25), ("c", 1.25), ("d", 1.0),
              ("e", 1.25), ("g1", 1.3), ("g2", 1.3), ("lite0", 1.5), ("lite0_grad", 1.5)]


def evaluate_bars(res: dict) -> list:
    """Every acceptance bar that the run has the numbers for: what, target, value, met."""
    bars = []

    def add(what, target, value, ok, unit="x", at_min=None):
        bars.append({"bar": what, "target": target, "value": value, "at_min": at_min,
                     "met": None if value is None else bool(ok), "unit": unit})

    def _min(cid, method):
        r = res["cases"].get(cid, {}).get("results", {}).get(method)
        return r["min"] if r else None
    ratios = {}
    for cid, limit in BARS_TORCH:
        if cid not in res["cases"]:
            continue
        a, t = _median(res, cid, "fastconv auto"), _median(res, cid, "torch")
        v = a / t if (a and t) else None
        ratios[cid] = v
        am, tm = _min(cid, "fastconv auto"), _min(cid, "torch")
        add(f"{cid}: fastconv auto / torch", f"<= {limit}", v, v is not None and v <= limit,
            at_min=am / tm if (am and tm) else None)
    geo = [ratios.get(c) for c in ("a1", "a2", "a3", "b", "c")]
    if all(geo):
        g = math.exp(sum(math.log(v) for v in geo) / len(geo))
        add("geomean a1,a2,a3,b,c: fastconv auto / torch", "<= 1.1", g, g <= 1.1)
    for cid in ("f1", "f2"):
        if cid in res["cases"]:
            R = res["cases"][cid]["results"]
            k, best = best_scipy(R)
            a = R.get("fastconv auto")
            v = a["median"] / best["median"] if (a and best) else None
            add(f"{cid}: fastconv auto / best of np.correlate, SciPy ({k})", "<= 1.0", v, v is not None and v <= 1.0,
                at_min=a["min"] / best["min"] if (a and best) else None)
    for cid, C in res["cases"].items():
        case = Case(**C["case"])
        if not case.multichannel_2d or case.Ci == 1:
            continue
        k, best = best_scipy(C["results"])
        a = C["results"].get("fastconv auto")
        v = best["median"] / a["median"] if (a and best) else None
        add(f"{cid}: best SciPy ({k}) / fastconv auto", ">= 50", v, v is not None and v >= 50,
            at_min=best["min"] / a["min"] if (a and best) else None)
    fc = res.get("first_call")
    if fc and "first_call_s" in fc:
        add("first conv2d call, new process, warm Numba cache", "< 1 s", fc["first_call_s"],
            fc["first_call_s"] < 1.0, unit="s")
    return bars


def merge_results(runs: list) -> dict:
    """Combine runs of the same cases: per cell the lowest median (other load only slows).

    Each kept cell is a whole measurement (median, min, n, bg and error of one run); the bars
    are re-evaluated on the merged cells.
    """
    out = json.loads(json.dumps(runs[0], default=str))

    def pick(a, b):
        if not b or "median" not in b:
            return a
        return b if (not a or b["median"] < a["median"]) else a

    def merge_cells(dst, src):
        for k, r in src.items():
            dst[k] = pick(dst.get(k), r)
    for run in runs[1:]:
        for cid, C in run["cases"].items():
            if cid in out["cases"]:
                merge_cells(out["cases"][cid]["results"], C["results"])
            else:
                out["cases"][cid] = C
        for sid, S in run["sweeps"].items():
            if sid not in out["sweeps"]:
                out["sweeps"][sid] = S
                continue
            mine = {P["value"]: P for P in out["sweeps"][sid]["points"]}
            for P in S["points"]:
                if P["value"] in mine:
                    merge_cells(mine[P["value"]]["results"], P["results"])
        fc, fo = run.get("first_call") or {}, out.get("first_call") or {}
        if "first_call_s" in fc and fc["first_call_s"] < fo.get("first_call_s", float("inf")):
            out["first_call"] = fc
        ceil = run["meta"].get("blas_ceiling")
        if ceil and ceil["gflops"] > out["meta"].get("blas_ceiling", {}).get("gflops", 0):
            out["meta"]["blas_ceiling"] = ceil
    m = out["meta"]
    m["merged_runs"] = len(runs)
    m["date"] = ", ".join(r["meta"]["date"] for r in runs)
    m["loadavg_start"] = " / ".join(str(r["meta"]["loadavg_start"]) for r in runs)
    m["loadavg_end"] = " / ".join(str(r["meta"].get("loadavg_end")) for r in runs)
    m["total_s"] = round(sum(r["meta"].get("total_s", 0) for r in runs), 1)
    m["waited_quiet_s"] = round(sum(r["meta"].get("waited_quiet_s", 0) for r in runs), 1)
    out["bars"] = evaluate_bars(out)
    return out


# ============================================================================ reports
METHOD_ORDER = ["fastconv auto", "fastconv direct", "fastconv im2col", "torch", "numpy im2col"]


def _fmt_t(t):
    if t is None:
        return "n/a"
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def _cell(r, flops):
    if not r:
        return "n/a"
    star = "*" if r.get("extrapolated") else ""
    return f"{_fmt_t(r['median'])}{star} / {_fmt_t(r['min'])} ({flops / r['median'] / 1e9:.3g})"


def _methods(results: dict):
    extra = [k for k in results if k not in METHOD_ORDER]
    return [k for k in METHOD_ORDER if k in results] + extra


def to_markdown(res: dict) -> str:
    m, v, th = res["meta"], res["meta"]["versions"], res["meta"]["threads"]
    L = ["# fastconv benchmark report", ""]
    if m.get("merged_runs"):
        L.append(f"Merged from {m['merged_runs']} runs: every cell is the run with the lowest median.")
        L.append("")
    L.append(f"Mode **{m['mode']}**, {m['date']}; {v.get('cpu')} ({v['ncpu']} CPUs); loadavg "
             f"{m['loadavg_start']} at start, {m.get('loadavg_end')} at end; total {m.get('total_s')} s "
             f"(of which {m.get('waited_quiet_s')} s waiting for other processes to go quiet).")
    L.append("")
    L.append(f"- Versions: fastconv {v['fastconv']}, NumPy {v['numpy']}, Numba {v['numba']}, SciPy {v['scipy']}, "
             f"PyTorch {v['torch'] or 'not installed'}, Python {v['python']}.")
    pools = ", ".join(f"{p.get('owner', '?')}'s {p['internal_api']} {p.get('version') or ''}"
                      f"{' ' + p['architecture'] if p.get('architecture') else ''}: {p['num_threads']}"
                      for p in th.get("pools", []))
    L.append(f"- Threads: {th['requested']} requested, set with {th['method']}; Numba {th['numba']} "
             f"({th.get('numba_threading_layer')} layer); torch {th.get('torch', 'n/a')}; pools: {pools or 'n/a'}.")
    L.append(f"- Data: {m['dtype']}, {m['layout']}, standard normal inputs; outputs allocated by each library "
             f"per call, fastconv's im2col workspace reused between calls. Memory: {m['malloc']}.")
    t = m["timer"]
    L.append(f"- Timing: first call untimed, {t['warmup']} warm-up call(s), then up to {t['repeats']} repeats "
             f"(at least {t['min_repeats']}, stopping after {t['max_time_s']} s); cells read "
             f"`median / min (GFLOP/s at the median)`; FLOP = 2 x MACs of the nominal convolution "
             f"(x3 for forward + both gradients). `*` = SciPy time extrapolated from a subset of output planes.")
    if "blas_ceiling" in m:
        c = m["blas_ceiling"]
        L.append(f"- Ceiling: {c['what']} {c['gflops']:.0f} GFLOP/s (median).")
    if m.get("torch_missing"):
        L.append("- PyTorch is not installed: torch columns and ratios are skipped.")
    L += ["", "## Bars", "", "Decided on medians; the ratio of the minimum times is shown for judging noise.", "",
          "| bar | target | measured (median) | from min times | met |", "|---|---|---|---|---|"]
    for b in res.get("bars", []):
        val = "n/a" if b["value"] is None else (f"{b['value']:.3g} s" if b["unit"] == "s" else f"{b['value']:.3g}x")
        at_min = "-" if b.get("at_min") is None else f"{b['at_min']:.3g}x"
        met = {True: "yes", False: "**no**", None: "n/a"}[b["met"]]
        L.append(f"| {b['bar']} | {b['target']} | {val} | {at_min} | {met} |")

    if res["cases"]:
        L += ["", "## Cases: median / min (GFLOP/s)", ""]
        L.append("| case | GFLOP | fastconv auto | fastconv direct | fastconv im2col | PyTorch | NumPy im2col | "
                 "best SciPy | auto / torch | SciPy / auto | max rel err | bg |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for cid, C in res["cases"].items():
            R, fl = C["results"], C["flops"]
            title = C["case"]["title"]
            a, tt = R.get("fastconv auto"), R.get("torch")
            k, best = best_scipy(R)
            fc_err = max((r["err"] for kk, r in R.items() if kk.startswith("fastconv") and r and
                          r.get("err") is not None), default=None)
            bgs = [r["bg"] for r in R.values() if r and r.get("bg") is not None]
            auto = _cell(a, fl) if a else C.get("note", "n/a")
            if a and C["auto_algo"]:
                auto += f" [{C['auto_algo']}]"
            L.append(" | ".join([
                f"| {cid} {title}", f"{fl / 1e9:.3g}", auto, _cell(R.get("fastconv direct"), fl),
                _cell(R.get("fastconv im2col"), fl), _cell(tt, fl), _cell(R.get("numpy im2col"), fl),
                (f"{_cell(best, fl)} {k}" if best else "-"),
                (f"{a['median'] / tt['median']:.2f}" if (a and tt) else "n/a"),
                (f"{best['median'] / a['median']:.3g}" if (a and best) else "-"),
                ("n/a" if fc_err is None else f"{fc_err:.1e}" + (" **!**" if fc_err > ERR_FLAG else "")),
                (f"{max(bgs):.0%}" if bgs else "n/a")]) + " |")
            if C.get("note") and a:
                L.append(f"| {cid} note: {C['note']} |" + " |" * 11)
        L += ["", "SciPy detail (median; `*` extrapolated from the subset of output planes shown):", ""]
        for cid, C in res["cases"].items():
            R = C["results"]
            parts = [f"{k} {_fmt_t(r['median'])}{'*' if r.get('extrapolated') else ''}"
                     + (f" ({r['subset']})" if r.get("subset") else "")
                     for k, r in R.items() if r and (k.startswith("scipy") or k in ("ndimage", "np.correlate"))]
            if parts:
                L.append(f"- {cid}: " + ", ".join(parts))

    if res["sweeps"]:
        L += ["", "## Scaling sweeps: median time (GFLOP/s)", ""]
        for sid, S in res["sweeps"].items():
            methods = _methods(S["points"][0]["results"])
            L += [f"### {sid}: {S['title']}, varying {S['param']}", "",
                  f"| {S['param']} | GFLOP | auto algo | " + " | ".join(methods) + " | auto / torch |",
                  "|---|---|---|" + "---|" * len(methods) + "---|"]
            for P in S["points"]:
                R, fl = P["results"], P["flops"]
                cells = [(f"{_fmt_t(R[k]['median'])}{'*' if R[k].get('extrapolated') else ''} "
                          f"({fl / R[k]['median'] / 1e9:.3g})") if R.get(k) else "n/a" for k in methods]
                a, tt = R.get("fastconv auto"), R.get("torch")
                ratio = f"{a['median'] / tt['median']:.2f}" if (a and tt) else "n/a"
                L.append(f"| {P['value']} | {fl / 1e9:.3g} | {P['auto_algo']} | " + " | ".join(cells) + f" | {ratio} |")
            L.append("")

    fc = res.get("first_call")
    if fc:
        L += ["", "## Start-up", ""]
        if "error" in fc:
            L.append(f"First-call measurement failed: {fc['error']}")
        else:
            L.append(f"In a fresh process with a warm Numba cache: `import fastconv` {fc['import_s']:.2f} s; "
                     f"first conv2d call (direct kernel) {fc['first_call_s']:.3f} s; first im2col call "
                     f"{fc['second_algo_first_call_s']:.3f} s; whole process {fc['process_wall_s']:.2f} s.")
    bad = [(cid, k, r["err"]) for cid, C in res["cases"].items() for k, r in C["results"].items()
           if r and r.get("err") is not None and r["err"] > ERR_FLAG]
    bad += [(f"{sid}[{P['value']}]", k, r["err"]) for sid, S in res["sweeps"].items() for P in S["points"]
            for k, r in P["results"].items() if r and r.get("err") is not None and r["err"] > ERR_FLAG]
    L += ["", "## Correctness", ""]
    L.append("Every result was compared with a float64 NumPy reference (Lite0: with PyTorch); "
             f"max relative error above {ERR_FLAG:g}: "
             + (", ".join(f"{c} {k} {e:.1e}" for c, k, e in bad) if bad else "none") + ".")
    return "\n".join(L) + "\n"


def to_json(res: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(res, f, indent=1, default=str)


COLORS = {"fastconv auto": "#1f5fa8", "fastconv direct": "#8fb8e0", "fastconv im2col": "#4a90d0",
          "torch": "#d62728", "numpy im2col": "#ff9f1c", "best SciPy": "#7f7f7f", "scipy fft": "#7f7f7f"}


def write_charts(res: dict, outdir: str) -> list:
    """PNG charts: time / torch per case (bars), time versus size per sweep. Returns the paths."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    except ImportError:
        _log("matplotlib is not installed: no charts written")
        return []
    os.makedirs(outdir, exist_ok=True)
    paths = []
    mode, th = res["meta"]["mode"], res["meta"]["threads"]["requested"]
    if res["meta"].get("merged_runs"):
        mode += f", {res['meta']['merged_runs']} merged"
    rows = [(cid, C) for cid, C in res["cases"].items()
            if C["results"].get("torch") and C["results"].get("fastconv auto")]
    if rows:
        series = ["fastconv auto", "fastconv direct", "fastconv im2col", "numpy im2col", "best SciPy"]
        limits = dict(BARS_TORCH)
        fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(rows) + 2), 4.8))
        wbar = 0.8 / len(series)
        for j, name in enumerate(series):
            xs, ys = [], []
            for i, (cid, C) in enumerate(rows):
                R = C["results"]
                r = best_scipy(R)[1] if name == "best SciPy" else R.get(name)
                if r:
                    xs.append(i + (j - (len(series) - 1) / 2) * wbar)
                    ys.append(r["median"] / R["torch"]["median"])
            ax.bar(xs, ys, width=wbar, color=COLORS[name], label=name, bottom=0)
            if name == "fastconv auto":
                for x, y in zip(xs, ys):
                    ax.annotate(f"{y:.2g}", (x, y), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7, color=COLORS[name])
        for i, (cid, _) in enumerate(rows):
            if cid in limits:
                ax.hlines(limits[cid], i - 0.45, i + 0.45, colors="k", linestyles="dashed", lw=1)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([cid for cid, _ in rows])
        ax.set_ylabel("median time / PyTorch median time")
        ax.set_title(f"Time relative to PyTorch ({th} threads, float32, {mode} run); "
                     "below 1 = faster; dashed = bar for fastconv auto", fontsize=9)
        ax.legend(fontsize=7, ncol=len(series), loc="upper center", bbox_to_anchor=(0.5, -0.08))
        ax.grid(axis="y", which="major", alpha=0.3)
        fig.tight_layout()
        paths.append(os.path.join(outdir, "ratios.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if res["sweeps"]:
        S = list(res["sweeps"].values())
        ncol = min(2, len(S))
        nrow = -(-len(S) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.7 * nrow), squeeze=False)
        handles = {}
        for ax, sw in zip(axes.flat, S):
            xs = [P["value"] for P in sw["points"]]
            for name in _methods(sw["points"][0]["results"]):
                ts = [P["results"][name]["median"] * 1e3 if P["results"].get(name) else np.nan
                      for P in sw["points"]]
                bold = name in ("fastconv auto", "torch")
                (h,) = ax.plot(xs, ts, marker="o", ms=3, lw=2.2 if bold else 1.1,
                               ls="-" if bold or name.startswith("fastconv") else "--",
                               color=COLORS.get(name), label=name)
                handles[name] = h
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(FixedLocator(xs))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel(sw["param"])
            ax.set_ylabel("median time (ms)")
            ax.set_title(f"{sw['id']}: {sw['title']}", fontsize=9)
            ax.grid(which="both", alpha=0.3)
        for ax in list(axes.flat)[len(S):]:
            ax.set_visible(False)
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8)
        fig.suptitle(f"Scaling sweeps: median time, float32, {th} threads ({mode} run)", fontsize=10)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        paths.append(os.path.join(outdir, "sweeps.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


# ============================================================================ command line
def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="fastconv bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller SciPy subsets, fewer sweep points")
    ap.add_argument("--tiny", action="store_true", help="shrink every shape (smoke test; numbers meaningless)")
    ap.add_argument("--json", metavar="FILE", help="write the raw results as JSON")
    ap.add_argument("--plot", metavar="DIR", help="write PNG charts into DIR (needs matplotlib)")
    ap.add_argument("--out", metavar="FILE", help="write the markdown report here (default: stdout)")
    ap.add_argument("--cases", metavar="IDS", help="comma-separated case ids or patterns, e.g. 'a*,c,lite0' "
                    f"(ids: {', '.join(c.id for c in ANCHOR_CASES)})")
    ap.add_argument("--sweeps", metavar="IDS", help=f"comma-separated sweeps ({', '.join(s.id for s in SWEEPS)})")
    ap.add_argument("--no-sweeps", action="store_true")
    ap.add_argument("--no-scipy", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-first-call", action="store_true", help="skip the fresh-process start-up measurement")
    ap.add_argument("--no-mallopt", action="store_true", help="leave glibc malloc at its defaults")
    ap.add_argument("--threads", type=int, default=2, help="threads for Numba, BLAS and torch (default 2)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="measure nothing: report on earlier --json runs, lowest median per cell")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    """Entry point of ``fastconv bench``: run, then write markdown / JSON / charts."""
    args = parse_args(argv)
    set_malloc_policy.policy = set_malloc_policy(not args.no_mallopt)
    split = (lambda s: tuple(x.strip() for x in s.split(",") if x.strip()))
    cfg = Config(quick=args.quick, tiny=args.tiny, threads=args.threads, scipy=not args.no_scipy,
                 torch=not args.no_torch, scipy_target=0.12 if (args.quick or args.tiny) else 0.3,
                 case_patterns=split(args.cases) if args.cases else (),
                 sweeps=() if args.no_sweeps else (split(args.sweeps) if args.sweeps else None),
                 first_call=not (args.no_first_call or args.tiny))
    if args.cases and not select_cases(cfg.case_patterns):
        print(f"no case matches {args.cases!r}", file=sys.stderr)
        return 2
    if args.merge:
        runs = []
        for path in args.merge:
            with open(path) as f:
                runs.append(json.load(f))
        res = merge_results(runs) if len(runs) > 1 else runs[0]
    else:
        res = Runner(cfg).run()
    md = to_markdown(res)
    if args.plot:
        paths = write_charts(res, args.plot)
        base = os.path.dirname(os.path.abspath(args.out)) if args.out else os.getcwd()
        links = [f"![{os.path.basename(p)}]({os.path.relpath(os.path.abspath(p), base)})" for p in paths]
        md += "\n## Charts\n\n" + ("\n\n".join(links) if links else "Skipped: matplotlib is not installed.") + "\n"
    if args.json:
        to_json(res, args.json)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    else:
        sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
