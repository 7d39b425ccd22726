"""Process policy of the benchmark: malloc, thread pools, versions, load average, logging.

Allocation policy: every library allocates its outputs on each call, as a user's code would;
fastconv keeps its im2col workspace between calls. glibc's ``mallopt`` is set so that freed
blocks below 32 MiB are reused instead of being returned to the OS (fresh pages cost about
3 us per 4 KiB on the VMs this was written on, which would otherwise swamp small cases).
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

import numpy as np

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


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


set_malloc_policy.policy = "not set"
