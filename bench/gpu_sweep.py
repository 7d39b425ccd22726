"""Tile sweep of the CUDA implicit GEMM, and where the im2col paths spend their time.

A tuning tool for a session with a GPU (``bench/gpu_check.sh`` is the report): it compiles
``implicit_gemm.cu`` for a list of candidate tiles (BM, BN, BK, TM, TN) in float32, launches
each on the anchor shapes of ``bench/gpu_bench.py`` (N=64; forward, and the input gradient
where the backward is benchmarked; e is the transposed convolution, i.e. an input gradient),
and prints median / min milliseconds and the relative error against fastconv's own
``algo='im2col'`` result (cuBLAS). Then it splits the im2col forward and weight gradient of
a1 and a3 into their parts (column kernel, cuBLAS GEMM, batch sum). TF32 off, CUDA events,
compilation excluded.

Usage: python bench/gpu_sweep.py [--out FILE.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("CUPY_TF32", "0")

import numpy as np
import cupy as cp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench as gb  # noqa: E402  (its anchors, set-up and timer)

from fastconv.backends import _cuda_src as src, cuda as cb  # noqa: E402

#: (BM, BN, BK, TM, TN): the shipped three first, then the candidates.
CANDIDATES = [
    (128, 128, 8, 8, 8), (64, 128, 8, 4, 8), (32, 256, 8, 4, 8),
    (128, 128, 16, 8, 8), (64, 128, 16, 4, 8), (128, 64, 8, 8, 4), (64, 64, 8, 4, 4), (64, 64, 16, 4, 4),
    (64, 256, 8, 8, 8), (64, 256, 16, 8, 8), (128, 256, 8, 8, 8), (256, 128, 8, 8, 8), (32, 128, 8, 4, 4),
    (32, 128, 16, 4, 4),
]
CASES = [("a1", "forward"), ("a2", "forward"), ("a3", "forward"), ("b", "forward"), ("c", "forward"),
         ("e", "grad_input"), ("a1", "grad_input"), ("a3", "grad_input")]


def name(t) -> str:
    return f"igemm_conv<float,{t[0]},{t[1]},{t[2]},{t[3]},{t[4]}>"


def launch_fn(kern, tile, plan, ktab, phases, inp, w, out, groups):
    bm, bn, _, tm, tn = tile
    grid = (-(-plan.max_p // bn), -(-plan.M // bm), groups * plan.nphase)
    scalars = tuple(np.int64(v) if n.endswith(":ll") else np.int32(v)
                    for n, v in zip(src.IGEMM_SCALARS, plan.scalars))
    return lambda: kern(grid, ((bm // tm) * (bn // tn),), (inp, w, out, ktab, phases) + scalars)


def sweep(lines, budget_s):
    t = time.perf_counter()
    mod = cp.RawModule(code=src.kernel_source("igemm"), options=src.compile_options(),
                       name_expressions=[name(c) for c in CANDIDATES])
    kerns = {c: mod.get_function(name(c)) for c in CANDIDATES}
    lines.append(f"Compiled {len(CANDIDATES)} tiles in {time.perf_counter() - t:.1f} s.\n")
    lines.append("| case | M | P (max phase) | " + " | ".join(f"{c[0]}x{c[1]}x{c[2]} {c[3]}x{c[4]}" for c in CANDIDATES)
                 + " | best |")
    lines.append("|---|---:|---:|" + "---:|" * (len(CANDIDATES) + 1))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for anchor, mode in CASES:
        if time.perf_counter() - t0 > budget_s:
            lines.append(f"| {anchor} {mode} | skipped (budget) |")
            continue
        x, w, geom, args = gb.setup(anchor, 64, rng)
        if args[3]:  # transposed: its forward is the input gradient of `geom`
            inp, out_shape = x, geom.x_shape
            ref = cb.conv_grad_input(x, w, geom, "im2col")
        elif mode == "forward":
            inp, out_shape = x, geom.y_shape
            ref = cb.conv_forward(x, w, geom, "im2col")
        else:
            inp = cp.asarray(rng.standard_normal(geom.y_shape, dtype=np.float32))
            out_shape = geom.x_shape
            ref = cb.conv_grad_input(inp, w, geom, "im2col")
        plan = src.igemm_plan(geom, mode)
        ktab, phases = cp.asarray(plan.ktab), cp.asarray(plan.phases)
        cells, best = [], None
        for c in CANDIDATES:
            out = cp.empty(out_shape, cp.float32)
            fn = launch_fn(kerns[c], c, plan, ktab, phases, inp, w, out, geom.groups)
            try:
                fn()
                err = gb.rel_err(out, ref)
                med, mn = gb.time_gpu(fn, max_s=0.3)
            except Exception as exc:  # a tile that does not launch (resources) is reported, not fatal
                cells.append(f"fail: {type(exc).__name__}")
                continue
            flag = "" if err < 1e-4 else f" ERR {err:.1e}"
            cells.append(f"{med:.3f}/{mn:.3f}{flag}")
            if not flag and (best is None or med < best[0]):
                best = (med, c)
        b = f"{best[1][0]}x{best[1][1]}x{best[1][2]} {best[1][3]}x{best[1][4]}" if best else "-"
        lines.append(f"| {anchor} {mode} | {plan.M} | {plan.max_p} | " + " | ".join(cells) + f" | {b} |")


def breakdown(lines):
    lines.append("\n## im2col parts (ms, median/min)\n")
    lines.append("| anchor | pass | columns kernel | cuBLAS GEMM | batch sum | whole algo |")
    lines.append("|---|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    for anchor in ("a1", "a3", "d"):
        x, w, g, _ = gb.setup(anchor, 64, rng)
        dy = cp.asarray(rng.standard_normal(g.y_shape, dtype=np.float32))
        B = cb._batch_tile(g, 4)
        cols = cb._columns(x, g, 0, B)
        wm = cb._wmat(w, g)
        yv = cp.empty((B, g.groups, g.C_out // g.groups, cols.shape[-1]), cp.float32)
        dyv = dy.reshape(g.N, g.groups, g.C_out // g.groups, -1)[:B]
        prod = cp.matmul(dyv, cp.swapaxes(cols, 2, 3))
        fmt = lambda r: f"{r[0]:.3f}/{r[1]:.3f} (x{-(-g.N // B)})"  # noqa: E731
        t_cols = gb.time_gpu(lambda: cb._columns(x, g, 0, B), max_s=0.3)
        t_fwd = gb.time_gpu(lambda: cp.matmul(wm, cols, out=yv), max_s=0.3)
        t_wg = gb.time_gpu(lambda: cp.matmul(dyv, cp.swapaxes(cols, 2, 3)), max_s=0.3)
        t_sum = gb.time_gpu(lambda: prod.sum(axis=0), max_s=0.3)
        whole_f = gb.time_gpu(lambda: cb.conv_forward(x, w, g, "im2col"), max_s=0.3)
        whole_w = gb.time_gpu(lambda: cb.conv_grad_weight(x, dy, g, "im2col"), max_s=0.3)
        lines.append(f"| {anchor} | forward (B={B}) | {fmt(t_cols)} | {fmt(t_fwd)} | - | {whole_f[0]:.3f}/{whole_f[1]:.3f} |")
        lines.append(f"| {anchor} | grad weight | {fmt(t_cols)} | {fmt(t_wg)} | {fmt(t_sum)} | {whole_w[0]:.3f}/{whole_w[1]:.3f} |")
        for algo in ("direct",):
            if g.is_depthwise:
                t_d = gb.time_gpu(lambda: cb.conv_forward(x, w, g, algo), max_s=0.3)
                t_gi = gb.time_gpu(lambda: cb.conv_grad_input(dy, w, g, algo), max_s=0.3)
                t_gw = gb.time_gpu(lambda: cb.conv_grad_weight(x, dy, g, algo), max_s=0.3)
                lines.append(f"| {anchor} | direct: forward / grad input / grad weight | {t_d[0]:.3f} | "
                             f"{t_gi[0]:.3f} | {t_gw[0]:.3f} | - |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--budget", type=float, default=120.0)
    a = ap.parse_args(argv)
    lines = ["# Implicit-GEMM tile sweep (float32, N=64, ms median/min; ERR: rel err >= 1e-4 vs im2col)\n"]
    try:
        sweep(lines, a.budget)
    except Exception as exc:
        import traceback
        lines.append(f"sweep failed: {exc!r}\n```\n{traceback.format_exc()}```")
    try:
        breakdown(lines)
    except Exception as exc:
        import traceback
        lines.append(f"breakdown failed: {exc!r}\n```\n{traceback.format_exc()}```")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
