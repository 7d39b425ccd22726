"""Tuning sweeps of the CUDA backend, and where its multi-kernel algorithms spend their time.

A tuning tool for a session with a GPU (``bench/gpu_check.sh`` is the report). Sections
(``--sections``, all by default), each on the anchor shapes of ``bench/gpu_bench.py`` (N=64,
float32, TF32 off, CUDA events, compilation excluded, ms as median/min):

``igemm``     compiles ``implicit_gemm.cu`` for candidate tiles (BM, BN, BK, TM, TN) and times
              each on the forward and input-gradient GEMMs (e, the transposed convolution, is
              an input gradient), with the relative error against ``algo='im2col'`` (cuBLAS).
``wgrad``     the implicit-GEMM weight gradient for every shipped tile and split count
              (kernel alone, and with the sum of the partial tiles), against the rule's pick
              (``wgrad-rule``: the rule's pick alone).
``winograd``  F(2x2, 3x3) in its parts: filter transform, input transform, batched GEMM,
              output transform, and the whole call against the implicit GEMM.
``planes``    the per-plane kernels (im2col columns, depthwise forward) for several
              ``PLANE_PIXELS_PER_THREAD``.
``im2col``    the im2col forward and weight gradient of a1, a3 and d in their parts (column
              kernel, cuBLAS GEMM, batch sum), and the depthwise direct passes.

Usage: python bench/gpu_sweep.py [--out FILE.md] [--sections wgrad,winograd] [--budget 120] [--n 64]
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

#: The batch of every case (``--n``; the benchmark's N=64 by default).
BATCH = 64

#: (BM, BN, BK, TM, TN): the shipped tiles, then other candidates.
CANDIDATES = list(src.IGEMM_TILES["float32"].values()) + [(64, 256, 16, 8, 8), (128, 64, 16, 8, 4)]
#: Shapes besides the anchors for the Winograd-or-not threshold (C_in, C_out, H, as ANCHORS'):
#: where between a2's 3 input channels (Winograd 2.5x slower) and a1's 64 (1.4x faster) it turns.
WINOGRAD_SHAPES = {"w8": (8, 8, 112, 3, 1, 1, 1, False, None), "w16": (16, 16, 112, 3, 1, 1, 1, False, None),
                   "w16-64": (16, 64, 56, 3, 1, 1, 1, False, None), "w32": (32, 32, 56, 3, 1, 1, 1, False, None)}
gb.ANCHORS.update(WINOGRAD_SHAPES)
CASES = [("a1", "forward"), ("a2", "forward"), ("a3", "forward"), ("b", "forward"), ("c", "forward"),
         ("e", "grad_input"), ("a1", "grad_input"), ("a3", "grad_input")]


def name(t) -> str:
    return f"igemm_conv<float,{t[0]},{t[1]},{t[2]},{t[3]},{t[4]}>"


def label(t) -> str:
    return f"{t[0]}x{t[1]}x{t[2]} {t[3]}x{t[4]}"


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
    lines.append("## Implicit-GEMM tile sweep (ERR: rel err >= 1e-4 vs im2col)\n")
    lines.append(f"Compiled {len(CANDIDATES)} tiles in {time.perf_counter() - t:.1f} s.\n")
    lines.append("| case | M | P (max phase) | " + " | ".join(label(c) for c in CANDIDATES)
                 + " | best |")
    lines.append("|---|---:|---:|" + "---:|" * (len(CANDIDATES) + 1))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for anchor, mode in CASES:
        if time.perf_counter() - t0 > budget_s:
            lines.append(f"| {anchor} {mode} | skipped (budget) |")
            continue
        x, w, geom, args = gb.setup(anchor, BATCH, rng)
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
        b = label(best[1]) if best else "-"
        lines.append(f"| {anchor} {mode} | {plan.M} | {plan.max_p} | " + " | ".join(cells) + f" | {b} |")


def wgrad_sweep(lines, budget_s, table=True):
    lines.append("\n## Implicit-GEMM weight gradient" + (": tile x split (ms kernel / with the sum)\n" if table else
                                                          ": the rule's pick\n"))
    dev = cp.cuda.Device().id
    tiles = list(src.IGEMM_TILES["float32"])
    rng = np.random.default_rng(2)
    t0 = time.perf_counter()
    for anchor in ("a1", "a3", "b", "c", "e", "a2"):
        if time.perf_counter() - t0 > budget_s:
            lines.append(f"- {anchor}: skipped (budget)")
            continue
        x, w, g, args = gb.setup(anchor, BATCH, rng)
        if args[3]:  # transposed: the weight gradient of the underlying convolution, x <-> dy
            x, dy = cp.asarray(rng.standard_normal(g.x_shape, dtype=np.float32)), x
        else:
            dy = cp.asarray(rng.standard_normal(g.y_shape, dtype=np.float32))
        ref = cb.conv_grad_weight(x, dy, g, "im2col")
        rule = cb._wgrad_launch(dev, g, "float32")
        auto = gb.time_gpu(lambda: cb.conv_grad_weight(x, dy, g, "implicit_gemm"), max_s=0.3)
        im2col = gb.time_gpu(lambda: cb.conv_grad_weight(x, dy, g, "im2col"), max_s=0.3)
        lines.append(f"\n{anchor}: the rule's grid {rule[1]}, nsplit {rule[4]}; whole call "
                     f"{auto[0]:.3f}/{auto[1]:.3f}, im2col's {im2col[0]:.3f}/{im2col[1]:.3f}\n")
        if not table:
            continue
        splits = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        lines.append("| tile | " + " | ".join(f"split {n}" for n in splits) + " |")
        lines.append("|---|" + "---:|" * len(splits))
        for tile in tiles:
            cells = []
            for ns in splits:
                try:
                    kern, grid, block, rest, nsplit = cb._wgrad_launch(dev, g, "float32", tile, ns)
                    ws = cp.empty((nsplit,) + g.w_shape, cp.float32)
                    run = lambda: kern(grid, block, (x, dy, ws) + rest)  # noqa: E731
                    run()
                    err = gb.rel_err(ws.sum(axis=0), ref)
                    k_ms = gb.time_gpu(run, max_s=0.2)[0]
                    whole = gb.time_gpu(lambda: (run(), ws.sum(axis=0)), max_s=0.2)[0]
                except Exception as exc:
                    cells.append(f"fail: {type(exc).__name__}")
                    continue
                cells.append(f"{k_ms:.3f}/{whole:.3f}" + ("" if err < 1e-4 else f" ERR {err:.1e}")
                             + ("" if nsplit == ns else f" (n={nsplit})"))
            lines.append(f"| {tile} | " + " | ".join(cells) + " |")


def winograd_parts(lines):
    lines.append("\n## Winograd F(2x2, 3x3) parts (ms median/min)\n")
    lines.append("| anchor | pass | filter transform | input transform | batched GEMM | output transform "
                 "| whole call | implicit GEMM | rel err vs igemm |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(3)
    for anchor in ("a1", "a2", "a3", *WINOGRAD_SHAPES):
        x, w, g, _ = gb.setup(anchor, BATCH, rng)
        dy = cp.asarray(rng.standard_normal(g.y_shape, dtype=np.float32))
        for mode in ("forward", "grad_input"):
            if mode == "forward":
                inp, wt, out_shape, pad, tr = x, w, g.y_shape, (g.padding[0][0], g.padding[1][0]), 0
                whole = lambda: cb.conv_forward(x, w, g, "winograd")  # noqa: E731
                ig = lambda: cb.conv_forward(x, w, g, "implicit_gemm")  # noqa: E731
            else:
                inp, wt, out_shape, tr = dy, w, g.x_shape, 1
                pad = (2 - g.padding[0][0], 2 - g.padding[1][0])
                whole = lambda: cb.conv_grad_input(dy, w, g, "winograd")  # noqa: E731
                ig = lambda: cb.conv_grad_input(dy, w, g, "implicit_gemm")  # noqa: E731
            N, C, H, W = inp.shape
            O, Ho, Wo = out_shape[1:]
            th, tw = -(-Ho // 2), -(-Wo // 2)
            U = cp.empty((16, O, C), cp.float32)
            out = cp.empty(out_shape, cp.float32)
            i32 = np.int32
            f_w = lambda: cb._launch_elementwise("winograd", "winograd_weight<float>", O * C,  # noqa: E731
                                                 (wt, U, i32(O), i32(C), i32(tr)), cp.float32)
            f_in = lambda: cb._winograd_tiles(inp, 0, N, th, tw, pad)  # noqa: E731
            f_w()
            V = f_in()
            Mt = cp.matmul(U, V)
            f_mm = lambda: cp.matmul(U, V, out=Mt)  # noqa: E731
            f_out = lambda: cb._launch_elementwise("winograd", "winograd_output<float>", Mt[0].size,  # noqa: E731
                                                   (Mt, out, i32(N), i32(O), i32(Ho), i32(Wo), i32(th), i32(tw)),
                                                   cp.float32)
            parts = [gb.time_gpu(f, max_s=0.2) for f in (f_w, f_in, f_mm, f_out, whole, ig)]
            err = gb.rel_err(whole(), ig())
            lines.append(f"| {anchor} | {mode} | " + " | ".join(f"{m:.3f}/{n:.3f}" for m, n in parts)
                         + f" | {err:.1e} |")
        # the weight gradient F(3x3, 2x2): dy's tile transform in the filter column, the GEMM
        # with CuPy's copy of V^T, dw's transform in the output column (whole batch, one tile)
        th, tw = -(-g.out_size[0] // 2), -(-g.out_size[1] // 2)
        Y = cp.empty((16, g.C_out, g.N * th * tw), cp.float32)
        dw = cp.empty(g.w_shape, cp.float32)
        f_in = lambda: cb._winograd_tiles(x, 0, g.N, th, tw, (g.padding[0][0], g.padding[1][0]))  # noqa: E731
        f_dy = lambda: cb._launch_elementwise("winograd", "winograd_dy<float>", Y[0].size,  # noqa: E731
                                              (dy, Y, i32(g.N), i32(g.C_out), i32(g.out_size[0]),
                                               i32(g.out_size[1]), i32(th), i32(tw)), cp.float32)
        V = f_in()
        f_dy()
        f_mm = lambda: cp.matmul(Y, cp.swapaxes(V, 1, 2))  # noqa: E731
        Mw = f_mm()
        f_dw = lambda: cb._launch_elementwise("winograd", "winograd_dw<float>", g.C_out * g.C_in,  # noqa: E731
                                              (Mw, dw, i32(g.C_out), i32(g.C_in)), cp.float32)
        whole = lambda: cb.conv_grad_weight(x, dy, g, "winograd")  # noqa: E731
        ig = lambda: cb.conv_grad_weight(x, dy, g, "implicit_gemm")  # noqa: E731
        parts = [gb.time_gpu(f, max_s=0.2) for f in (f_dy, f_in, f_mm, f_dw, whole, ig)]
        err = gb.rel_err(whole(), ig())
        lines.append(f"| {anchor} | grad_weight (dy / input / GEMM + V^T copy / dw) | "
                     + " | ".join(f"{m:.3f}/{n:.3f}" for m, n in parts) + f" | {err:.1e} |")


def planes_sweep(lines):
    lines.append("\n## Per-plane kernels by PLANE_PIXELS_PER_THREAD (ms median/min)\n")
    values = [1, 4, 8, 16, 32]
    lines.append("| kernel | " + " | ".join(f"{v} px" for v in values) + " |")
    lines.append("|---|" + "---:|" * len(values))
    rng = np.random.default_rng(4)
    saved = cb.PLANE_PIXELS_PER_THREAD
    cases = []
    for anchor in ("a1", "a3", "b"):
        x, w, g, _ = gb.setup(anchor, BATCH, rng)
        B = cb._batch_tile(g, 4)
        cases.append((f"im2col columns {anchor} (B={B})", lambda x=x, g=g, B=B: cb._columns(x, g, 0, B)))
    x, w, g, _ = gb.setup("d", BATCH, rng)
    dy = cp.asarray(rng.standard_normal(g.y_shape, dtype=np.float32))
    cases.append(("depthwise forward d", lambda: cb.conv_forward(x, w, g, "direct")))
    cases.append(("depthwise grad input d", lambda: cb.conv_grad_input(dy, w, g, "direct")))
    try:
        for what, fn in cases:
            cells = []
            for v in values:
                cb.PLANE_PIXELS_PER_THREAD = v
                cells.append("%.3f/%.3f" % gb.time_gpu(fn, max_s=0.15))
            lines.append(f"| {what} | " + " | ".join(cells) + " |")
    finally:
        cb.PLANE_PIXELS_PER_THREAD = saved


def breakdown(lines):
    lines.append("\n## im2col parts (ms, median/min)\n")
    lines.append("| anchor | pass | columns kernel | cuBLAS GEMM | batch sum | whole algo |")
    lines.append("|---|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    for anchor in ("a1", "a3", "d"):
        x, w, g, _ = gb.setup(anchor, BATCH, rng)
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


SECTIONS = {
    "wgrad": wgrad_sweep,
    "wgrad-rule": lambda lines, budget: wgrad_sweep(lines, budget, table=False),
    "winograd": lambda lines, budget: winograd_parts(lines),
    "planes": lambda lines, budget: planes_sweep(lines),
    "im2col": lambda lines, budget: breakdown(lines),
    "igemm": sweep,
}


def main(argv=None):
    global BATCH
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--budget", type=float, default=120.0)
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated, from {','.join(SECTIONS)}")
    ap.add_argument("--n", type=int, default=BATCH, help="batch size (default 64)")
    a = ap.parse_args(argv)
    BATCH = a.n
    lines = [f"# CUDA tuning sweeps (float32, N={BATCH}, ms median/min)\n"]
    for name_ in a.sections.split(","):
        t, start = time.perf_counter(), len(lines)
        try:
            SECTIONS[name_](lines, a.budget)
        except Exception as exc:
            import traceback
            lines.append(f"{name_} failed: {exc!r}\n```\n{traceback.format_exc()}```")
        lines.append(f"\n({name_}: {time.perf_counter() - t:.1f} s)\n")
        print("\n".join(lines[start:]), flush=True)
        if a.out:  # after every section, so a run cut short keeps what it measured
            with open(a.out, "w") as f:
                f.write("\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
