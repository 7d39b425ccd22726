"""Running the benchmark: the configuration, the Runner over cases and sweeps, start-up times."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from fastconv.bench.cases import SWEEPS, Case, Sweep, make_data, select_cases
from fastconv.bench.environment import _loadavg, _log, _optional, set_malloc_policy, setup_threads, versions
from fastconv.bench.methods import (fastconv_algo_applies, fastconv_auto_algo, fastconv_fn, lite0_fastconv_fn, lite0_torch_fn,
                                    numpy_fn, reference, scipy_1d_fns, scipy_units, torch_fn)
from fastconv.bench.report import evaluate_bars
from fastconv.bench.timing import Timer, _to_numpy, pick_subset, rel_err

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


class Runner:
    """Runs cases and sweeps under one Timer; collects a JSON-able result dictionary."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        q = cfg.quick or cfg.tiny
        self.timer = Timer(repeats=5 if q else 15, min_repeats=3 if q else 5, max_time=0.4 if q else 2.0,
                           warmup=3 if q else 5, quiet_s=0 if cfg.tiny else (30 if q else 90),
                           retry_s=0 if cfg.tiny else (45 if q else 120))
        self.torch = _optional("torch") if cfg.torch else None
        self.scipy = _optional("scipy") if cfg.scipy else None
        from fastconv.backends import cpu
        self.algos = ["auto", *cpu.ALGOS]
        self.blocks = 1 if cfg.tiny else (3 if q else 5)
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
        """Every fastconv algorithm, torch (when present) and NumPy im2col on one case, with
        errors; timed in alternating blocks (``Timer.interleaved``)."""
        fns = {f"fastconv {algo}": fastconv_fn(case, d, algo) for algo in self.algos
               if fastconv_algo_applies(case, algo)}
        if self.torch is not None:
            fns["torch"] = torch_fn(case, d)
        fns["numpy im2col"] = numpy_fn(case, d)
        errs = {k: rel_err(fn(), ref) for k, fn in fns.items()}   # first calls: compile, plan
        R = self.timer.interleaved(fns, self.blocks)
        for k in R:
            R[k]["err"] = errs[k]
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
            tfn, target = lite0_torch_fn(case, d, state)
            ref = _to_numpy(tfn())
        try:
            fn = lite0_fastconv_fn(case, d, target)
        except (ImportError, AttributeError) as exc:
            res["note"] = f"fastconv side skipped: fastconv.models.efficientnet_lite0 unavailable ({exc})"
            return res
        try:
            out = fn()
        except Exception as exc:   # an API mismatch must not sink the whole report
            res["note"] = f"fastconv side failed: {type(exc).__name__}: {exc}"
            return res
        fns = {"fastconv auto": fn} if ref is None else {"fastconv auto": fn, "torch": tfn}
        R.update(self.timer.interleaved(fns, self.blocks))
        R["fastconv auto"]["err"] = rel_err(out, ref) if ref is not None else None
        if "torch" in R:
            R["torch"]["err"] = 0.0
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
                          "max_time_s": self.timer.max_time, "warmup": self.timer.warmup,
                          "blocks": self.blocks},
                "scipy_target_s": cfg.scipy_target, "loadavg_start": _loadavg(),
                "torch_missing": cfg.torch and self.torch is None,
                "date": time.strftime("%Y-%m-%d %H:%M")}

    def blas_ceiling(self, n=2048) -> dict:
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        r = self.timer(lambda: a @ a, warmup=1, repeats=3)
        return dict(r, gflops=2 * n ** 3 / r["median"] / 1e9, what=f"numpy float32 matmul {n}^3")


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
