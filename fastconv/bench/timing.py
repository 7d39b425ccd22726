"""Measuring: the Timer, the background-load probe, SciPy subset sizing and relative errors.

Timing: each measurement first waits (boundedly) for other processes to go quiet, runs the
function ``warmup`` times untimed (the first call, which may compile, is never timed), then
repeats it and reports the median and the minimum wall time, the number of repeats and the
share of the CPUs that *other* processes used meanwhile (``bg``, from /proc/stat). The methods
compared on one case are timed in alternating blocks (:meth:`Timer.interleaved`), the best
block of each kept, so that a slow spell of the shared machine does not decide a ratio. A
measurement disturbed by other load is repeated within a bounded budget, keeping the lowest
median. FLOP = 2 x multiply-adds of the nominal convolution (padded taps counted, skipped
strides not); forward + both gradients counts 3x.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from fastconv.bench.environment import NCPU

ERR_FLAG = 1e-4
#: Pause before every measurement: the previous library's worker threads (OpenBLAS's, PyTorch's
#: OpenMP) spin for a while after their last call and would slow the next method's first calls
#: (with 20 ms, the first method of each round measured up to 1.5x slower than the same code later).
PARK_S = 0.2

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

    def interleaved(self, fns: dict, blocks: int = 2) -> dict:
        """{name: result} for the methods of one case, measured in alternating blocks.

        A shared VM's speed drifts over seconds: timed once each, one after the other, the
        same pair measured 0.5x in one run and 1.8x in the next. Here every method is timed
        ``blocks`` times, in rotated turns (A B C, B C A, C A B: no method is always first after
        the previous case), each block a normal measurement (pause, warm-up, repeats), and its
        block with the lowest median is kept: each method gets chances in different spells. Calls are not interleaved one by one:
        OpenBLAS's and PyTorch's worker threads spin for a while after a call and would slow
        whichever library runs next; a block's warm-up calls absorb that.
        """
        best, names = {}, list(fns)
        for b in range(blocks):
            for k in names[b % len(names):] + names[:b % len(names)]:   # rotated: A B C, B C A, ...
                r = self(fns[k])
                if k not in best or r["median"] < best[k]["median"]:
                    best[k] = r
        for r in best.values():
            r["blocks"] = blocks
        return best

    def _once(self, fn, warmup, scale, repeats):
        if self.quiet_left > 0:
            self.wait_quiet()   # sleeps at least one 0.2 s window
        else:
            time.sleep(PARK_S)
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
