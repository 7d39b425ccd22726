"""GPU benchmark: fastconv's CUDA algorithms against PyTorch's cuDNN on the anchor shapes.

Times the forward convolution (and the transposed convolution of anchor e) of every fastconv
CUDA algorithm and of ``torch.nn.functional.conv2d`` / ``conv_transpose2d`` (cuDNN, with
``cudnn.benchmark=True`` so that cuDNN picks its fastest algorithm, and TF32 OFF for both
cuDNN and cuBLAS so that every side computes in true float32), then a few backward passes.
Each timing is a series of CUDA-event-timed launches after warm-up (compilation excluded);
the report gives median and min, TFLOP/s (2 * multiply-adds of the nominal convolution per
second) and the ratio fastconv / cuDNN (target: best fastconv algo <= 1.5x on the forward).

Usage: python bench/gpu_bench.py [--n 64] [--out bench/RESULTS-gpu.md] [--budget 300]
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
import traceback

os.environ.setdefault("CUPY_TF32", "0")  # cuBLAS in true float32, as cuDNN below

import numpy as np
import cupy as cp

import fastconv
from fastconv import autotune, grad
from fastconv.backends import cuda as cuda_backend
from fastconv.geometry import conv_geometry, transposed_geometry

try:
    import torch
    import torch.nn.functional as F
    HAVE_TORCH = torch.cuda.is_available()
except Exception:  # torch absent or CPU-only
    torch = None
    HAVE_TORCH = False

# name: (C_in, C_out, H, k, stride, padding, groups, transposed, N override)
ANCHORS = {
    "a1": (64, 64, 56, 3, 1, 1, 1, False, None),
    "a2": (3, 64, 224, 3, 1, 1, 1, False, None),
    "a3": (256, 256, 14, 3, 1, 1, 1, False, None),
    "b": (3, 64, 224, 7, 2, 3, 1, False, None),
    "c": (256, 64, 28, 1, 1, 0, 1, False, None),
    "d": (128, 128, 56, 3, 1, 1, 128, False, None),
    "e": (64, 32, 28, 4, 2, 1, 1, True, None),
}
DESCR = {
    "a1": "3x3 s1 p1 64->64 56x56", "a2": "3x3 s1 p1 3->64 224x224", "a3": "3x3 s1 p1 256->256 14x14",
    "b": "7x7 s2 p3 3->64 224x224", "c": "1x1 256->64 28x28", "d": "depthwise 3x3 p1 C128 56x56",
    "e": "transposed 4x4 s2 p1 64->32 28->56",
}
BACKWARD = ("a1", "a3", "d", "e")


def time_gpu(fn, min_reps=5, max_reps=50, max_s=0.6):
    """Median and min milliseconds of fn() over CUDA-event-timed repetitions (after 2 warm-ups)."""
    for _ in range(2):
        fn()
    cp.cuda.Device().synchronize()
    if HAVE_TORCH:
        torch.cuda.synchronize()
    times, t_start = [], time.perf_counter()
    stream = cp.cuda.get_current_stream()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - t_start < max_s):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record(stream)
        fn()
        b.record(stream)
        b.synchronize()
        times.append(cp.cuda.get_elapsed_time(a, b))
    return float(np.median(times)), float(np.min(times))


def time_torch(fn, min_reps=5, max_reps=50, max_s=0.6):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times, t_start = [], time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - t_start < max_s):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times)), float(np.min(times))


#: FP32 lanes per SM by compute capability major.minor (CUDA C Programming Guide, "Arithmetic
#: Instructions"); the card's float32 rate is 2 * lanes * SMs * clock.
FP32_LANES = {(6, 0): 64, (7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
              (9, 0): 128, (10, 0): 128, (12, 0): 128}


def peak_tflops(props, dev_id: int):
    """The card's float32 FMA rate in TFLOP/s, or None when the clock or the SM type is unknown."""
    lanes = FP32_LANES.get((props.get("major"), props.get("minor")))
    clock_khz = props.get("clockRate")
    if not clock_khz:  # CUDA 13 dropped clockRate from cudaDeviceProp: ask for the attribute
        try:
            clock_khz = cp.cuda.runtime.deviceGetAttribute(13, dev_id)  # cudaDevAttrClockRate
        except Exception:
            clock_khz = None
    if not lanes or not clock_khz:
        return None
    return 2.0 * lanes * props["multiProcessorCount"] * clock_khz * 1e3 / 1e12


def fmt(v, spec: str) -> str:
    """``v`` formatted, or '-' where there is nothing to show (no cuDNN to compare with)."""
    return "-" if v is None or v != v else format(v, spec)


def rel_err(a, b) -> float:
    a = cp.asarray(a, dtype=cp.float64)
    b = cp.asarray(b, dtype=cp.float64)
    return float(cp.abs(a - b).max() / max(float(cp.abs(b).max()), 1e-30))


def setup(name, N, rng):
    C_in, C_out, H, k, s, p, groups, transposed, n_override = ANCHORS[name]
    N = n_override or N
    x = cp.asarray(rng.standard_normal((N, C_in, H, H), dtype=np.float32))
    # math.sqrt: a Python float keeps the array float32 (a NumPy float64 scalar would promote it)
    scale = 1.0 / math.sqrt(C_in * k * k)
    if transposed:
        w = cp.asarray(rng.standard_normal((C_in, C_out // groups, k, k), dtype=np.float32) * scale)
        geom = transposed_geometry(x.shape, w.shape, s, p, 0, groups)
    else:
        w = cp.asarray(rng.standard_normal((C_out, C_in // groups, k, k), dtype=np.float32) * scale)
        geom = conv_geometry(x.shape, w.shape, s, p, 1, groups)
    return x, w, geom, (s, p, groups, transposed)


def forward_fns(x, w, args):
    s, p, groups, transposed = args
    if transposed:
        fc = lambda algo: fastconv.conv_transpose2d(x, w, stride=s, padding=p, groups=groups, algo=algo)  # noqa: E731
    else:
        fc = lambda algo: fastconv.conv2d(x, w, stride=s, padding=p, groups=groups, algo=algo)  # noqa: E731
    tfn = None
    if HAVE_TORCH:
        tx, tw = torch.from_dlpack(x), torch.from_dlpack(w)
        if transposed:
            tfn = lambda: F.conv_transpose2d(tx, tw, stride=s, padding=p, groups=groups)  # noqa: E731
        else:
            tfn = lambda: F.conv2d(tx, tw, stride=s, padding=p, groups=groups)  # noqa: E731
    return fc, tfn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="batch size (default 64)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS-gpu.md"))
    ap.add_argument("--budget", type=float, default=300.0, help="seconds; later cases are skipped past it")
    ap.add_argument("--anchors", default=",".join(ANCHORS))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if HAVE_TORCH:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    rng = np.random.default_rng(0)
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    gpu_name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    peak = peak_tflops(props, dev.id)

    t = time.perf_counter()
    cuda_backend.warm(("float32",))
    compile_s = time.perf_counter() - t

    rows, back_rows, notes, summary = [], [], [], []
    for name in a.anchors.split(","):
        if time.perf_counter() - t0 > a.budget:
            notes.append(f"{name}: skipped (time budget {a.budget:.0f} s reached)")
            continue
        try:
            x, w, geom, args = setup(name, a.n, rng)
            flops = 2.0 * geom.macs
            fc, tfn = forward_fns(x, w, args)
            ref = tfn() if tfn else None
            t_med = t_min = None
            if tfn:
                t_med, t_min = time_torch(tfn)
                rows.append((name, "cuDNN (torch)", t_med, t_min, flops / t_med / 1e9, 1.0, 0.0))
            best = None
            # every algorithm that computes this anchor (Winograd: 3x3 stride-1 ones)
            for algo in cuda_backend.algos_for(geom, "grad_input" if args[3] else "forward"):
                if algo == "direct" and geom.macs > 2e10 and not geom.is_depthwise:
                    notes.append(f"{name}: direct skipped ({geom.macs / 1e9:.0f} GMAC: one thread per "
                                 f"output would take seconds)")
                    continue
                y = fc(algo)
                err = rel_err(cp.asarray(y), cp.from_dlpack(ref)) if ref is not None else float("nan")
                med, mn = time_gpu(lambda: fc(algo))
                ratio = med / t_med if t_med else float("nan")
                rows.append((name, algo, med, mn, flops / med / 1e9, ratio, err))
                if best is None or med < best[1]:
                    best = (algo, med, ratio)
                del y
            auto = cuda_backend.choose_algo(geom)
            summary.append((name, best, auto))
            if name in BACKWARD and time.perf_counter() - t0 < a.budget:
                back_rows.extend(bench_backward(name, x, w, geom, args, best and best[1], t_med))
            del x, w, ref
            cp.get_default_memory_pool().free_all_blocks()
            if HAVE_TORCH:
                torch.cuda.empty_cache()
        except Exception as exc:  # keep going: one broken case must not lose the others
            notes.append(f"{name}: ERROR {type(exc).__name__}: {exc}")
            traceback.print_exc()

    write_report(a, gpu_name, peak, compile_s, rows, back_rows, summary, notes, time.perf_counter() - t0)
    print(open(a.out).read())
    return 0


def bench_backward(name, x, w, geom, args, fwd_ms, cudnn_fwd_ms):
    """grad input and grad weight: fastconv's autotuned 'auto' vs torch's cuDNN backward kernels
    (cuDNN in its benchmark mode, fastconv with ``fastconv.autotune``), and the three passes of a
    training step together (forward times given: fastconv's best algorithm, cuDNN)."""
    s, p, groups, transposed = args
    out = []
    if transposed:  # input grad of a transposed conv is a forward conv; skip the duplicate
        return out
    y = fastconv.conv2d(x, w, stride=s, padding=p, groups=groups)
    gy = cp.asarray(np.random.default_rng(1).standard_normal(y.shape, dtype=np.float32))
    flops = 2.0 * geom.macs
    cases = [("grad input", "grad_input",
              lambda: grad.conv2d_input(x.shape, w, gy, stride=s, padding=p, groups=groups)),
             ("grad weight", "grad_weight",
              lambda: grad.conv2d_weight(x, w.shape, gy, stride=s, padding=p, groups=groups))]
    tcases = {}
    if HAVE_TORCH:
        tx, tw, tg = torch.from_dlpack(x), torch.from_dlpack(w), torch.from_dlpack(gy)
        tcases = {"grad input": lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tg, stride=s, padding=p, groups=groups),
                  "grad weight": lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg, stride=s, padding=p, groups=groups)}
    for what, op, fn in cases:
        with autotune.enabled():
            fn()                                  # the first call tunes; the timed ones reuse it
            algo = next(c.algo for pr, c in autotune.choices().items() if pr.op == op and pr.geom == geom)
            med, mn = time_gpu(fn)
        tmed = time_torch(tcases[what])[0] if what in tcases else float("nan")
        out.append((name, what, algo, med, mn, flops / med / 1e9, tmed, med / tmed if tmed == tmed else float("nan")))
    if fwd_ms is not None:
        total = fwd_ms + out[0][3] + out[1][3]
        ttotal = (cudnn_fwd_ms or float("nan")) + out[0][6] + out[1][6]
        out.append((name, "forward + both gradients", "best, tuned, tuned", total, float("nan"),
                    3 * flops / total / 1e9, ttotal, total / ttotal))
    return out


def write_report(a, gpu_name, peak, compile_s, rows, back_rows, summary, notes, total_s):
    lines = [
        "# fastconv GPU benchmark",
        "",
        f"Written by `bench/gpu_bench.py` (run through `bench/gpu_check.sh`) on "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"- GPU: {gpu_name}; CuPy {cp.__version__}; CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}; "
        f"torch {torch.__version__ if torch else 'absent'}"
        + (f" (cuDNN {torch.backends.cudnn.version()})" if HAVE_TORCH else "") + f"; Python {platform.python_version()}",
        f"- float32, NCHW, batch N={a.n}; TF32 off (cuDNN `allow_tf32=False`, cuBLAS `CUPY_TF32=0`, "
        f"torch `matmul.allow_tf32=False`); cuDNN with `benchmark=True` (its fastest algorithm).",
        f"- Times: CUDA events around each call, warm (kernel compilation, {compile_s:.1f} s cold, excluded); "
        f"median and min over up to 50 calls. TFLOP/s = 2 x nominal multiply-adds / median time.",
        (f"- The card's float32 rate: {peak:.1f} TFLOP/s (2 x FP32 lanes x SMs x clock); '% peak' is "
         f"TFLOP/s against it." if peak else "- The card's float32 rate is unknown (no clock or SM type)."),
        "- ratio = fastconv median / cuDNN median (targets: the best algo <= 1.5 on each forward, "
        "geometric mean <= 1.25; forward + both gradients <= 1.5).",
        "- rel err = max |fastconv - cuDNN| / max |cuDNN| (both float32).",
        "",
        "## Forward",
        "",
        "| anchor | shape | implementation | median ms | min ms | TFLOP/s | % peak | ratio | rel err |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    pct = (lambda tf: fmt(100.0 * tf / peak, ".0f")) if peak else (lambda tf: "-")  # noqa: E731
    for name, impl, med, mn, tflops, ratio, err in rows:
        lines.append(f"| {name} | {DESCR[name]} | {impl} | {med:.3f} | {mn:.3f} | {tflops:.2f} | {pct(tflops)} | "
                     f"{fmt(ratio, '.2f')} | {fmt(err, '.1e')} |")
    lines += ["", "## Best fastconv algorithm per anchor", "",
              "| anchor | best algo | median ms | ratio to cuDNN | <= 1.5x | algo='auto' picks |", "|---|---|---:|---:|---|---|"]
    for name, best, auto in summary:
        if best is None:
            continue
        ok = "yes" if best[2] <= 1.5 else ("no" if best[2] == best[2] else "-")
        lines.append(f"| {name} | {best[0]} | {best[1]:.3f} | {fmt(best[2], '.2f')} | {ok} | {auto} |")
    ratios = [best[2] for _, best, _ in summary if best is not None and best[2] == best[2]]
    if ratios:
        gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        lines += ["", f"Geometric mean of the best forward ratios over {len(ratios)} anchors: {gm:.2f} "
                      f"(target <= 1.25: {'met' if gm <= 1.25 else 'not met'})."]
    if back_rows:
        lines += ["", "## Backward (fastconv algo='auto', autotuned, vs cuDNN backward in benchmark mode)", "",
                  "The algo column is what `fastconv.autotune` picked after timing every CUDA algorithm; "
                  "the training-step row adds fastconv's best forward above.", "",
                  "| anchor | pass | algo | median ms | min ms | TFLOP/s | cuDNN ms | ratio |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for name, what, algo, med, mn, tflops, tmed, ratio in back_rows:
            lines.append(f"| {name} | {what} | {algo} | {med:.3f} | {fmt(mn, '.3f')} | {tflops:.2f} | "
                         f"{fmt(tmed, '.3f')} | {fmt(ratio, '.2f')} |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Total benchmark time: {total_s:.0f} s.", ""]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
