"""From results to verdicts and documents: the acceptance bars, merging runs, markdown, JSON, charts."""
from __future__ import annotations

import json
import math
import os

import numpy as np

from fastconv.bench.cases import Case
from fastconv.bench.environment import _log
from fastconv.bench.timing import ERR_FLAG

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
METHOD_ORDER = ["fastconv auto", "fastconv direct", "fastconv im2col", "fastconv winograd", "fastconv fft",
                "torch", "numpy im2col"]


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


def _methods(points: list):
    """The methods timed at any point of a sweep, in report order (FFT only at larger kernels)."""
    names = list(dict.fromkeys(k for P in points for k in P["results"]))
    return [k for k in METHOD_ORDER if k in names] + [k for k in names if k not in METHOD_ORDER]


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
             f"(at least {t['min_repeats']}, stopping after {t['max_time_s']} s); the methods of a case are "
             f"measured in {t.get('blocks', 1)} alternating blocks (A B C, B C A, ...) and each keeps its block with "
             f"the lowest median, so that one slow spell of the machine does not decide a ratio; cells read "
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
        L.append("| case | GFLOP | fastconv auto | fastconv direct | fastconv im2col | fastconv winograd | "
                 "fastconv fft | PyTorch | NumPy im2col | best SciPy | auto / torch | SciPy / auto | max rel err | bg |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
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
                _cell(R.get("fastconv im2col"), fl), _cell(R.get("fastconv winograd"), fl),
                _cell(R.get("fastconv fft"), fl), _cell(tt, fl),
                _cell(R.get("numpy im2col"), fl),
                (f"{_cell(best, fl)} {k}" if best else "-"),
                (f"{a['median'] / tt['median']:.2f}" if (a and tt) else "n/a"),
                (f"{best['median'] / a['median']:.3g}" if (a and best) else "-"),
                ("n/a" if fc_err is None else f"{fc_err:.1e}" + (" **!**" if fc_err > ERR_FLAG else "")),
                (f"{max(bgs):.0%}" if bgs else "n/a")]) + " |")
            if C.get("note") and a:
                L.append(f"| {cid} note: {C['note']} |" + " |" * 13)
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
            methods = _methods(S["points"])
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
          "fastconv winograd": "#2ca02c", "fastconv fft": "#9467bd",
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
    runs = res["meta"].get("merged_runs")
    mode = f"{mode} mode, {runs} runs merged" if runs else f"{mode} run"
    rows = [(cid, C) for cid, C in res["cases"].items()
            if C["results"].get("torch") and C["results"].get("fastconv auto")]
    if rows:
        series = ["fastconv auto", "fastconv direct", "fastconv im2col", "fastconv winograd", "fastconv fft",
                  "numpy im2col", "best SciPy"]
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
        ax.set_title(f"Time relative to PyTorch ({th} threads, float32, {mode}); "
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
            for name in _methods(sw["points"]):
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
        fig.suptitle(f"Scaling sweeps: median time, float32, {th} threads ({mode})", fontsize=10)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        paths.append(os.path.join(outdir, "sweeps.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
