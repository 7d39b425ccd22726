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

Every result is compared with a float64 NumPy reference (Lite0: torch); errors above 1e-4 are
flagged. The modules, each with one job (arrows point one way, top to bottom):

* ``environment``: process policy (glibc malloc, thread pools, versions, load average, logging);
* ``timing``: the Timer (median / min, background load), SciPy subset sizing, relative errors;
* ``cases``: the anchor cases (ANCHORS.md), the scaling sweeps, their data;
* ``methods``: the function to time for each library, and the float64 reference;
* ``report``: the acceptance bars, merging runs, markdown, JSON and charts;
* ``runner``: the configuration and the Runner that times cases and sweeps;
* this file: the command line.

Run ``python -m fastconv.bench --help`` (or ``fastconv bench``) for the options.
"""
from __future__ import annotations

import argparse
import dataclasses  # re-exported: callers use ``bench.dataclasses.replace``
import json
import os
import sys

from fastconv.bench.cases import (ANCHOR_CASES, LITE0_STAGES, SWEEPS, Case, Sweep, lite0_blocks, lite0_flops,
                                  make_data, select_cases)
from fastconv.bench.environment import (MMAP_THRESHOLD, NCPU, TRIM_THRESHOLD, _optional, set_malloc_policy,
                                        setup_threads, versions)
from fastconv.bench.methods import (fastconv_algo_applies, fastconv_auto_algo, fastconv_fn, lite0_fastconv_fn,
                                    lite0_torch_fn, np_col2im, np_conv2d, np_conv2d_fwd_bwd, np_conv_transpose2d,
                                    np_conv_transpose2d_fwd_bwd, np_im2col, numpy_fn, reference, scipy_1d_fns,
                                    scipy_units, torch_fn, torch_lite0)
from fastconv.bench.report import (BARS_TORCH, COLORS, METHOD_ORDER, best_scipy, evaluate_bars, merge_results,
                                   to_json, to_markdown, write_charts)
from fastconv.bench.runner import Config, Runner, first_call_times
from fastconv.bench.timing import ERR_FLAG, Timer, pick_subset, rel_err

__all__ = [
    "main", "parse_args", "dataclasses",
    # environment
    "MMAP_THRESHOLD", "NCPU", "TRIM_THRESHOLD", "_optional", "set_malloc_policy", "setup_threads", "versions",
    # timing
    "ERR_FLAG", "Timer", "pick_subset", "rel_err",
    # cases
    "ANCHOR_CASES", "LITE0_STAGES", "SWEEPS", "Case", "Sweep", "lite0_blocks", "lite0_flops", "make_data",
    "select_cases",
    # methods
    "fastconv_algo_applies", "fastconv_auto_algo", "fastconv_fn", "lite0_fastconv_fn", "lite0_torch_fn", "np_col2im", "np_conv2d",
    "np_conv2d_fwd_bwd", "np_conv_transpose2d", "np_conv_transpose2d_fwd_bwd", "np_im2col", "numpy_fn",
    "reference", "scipy_1d_fns", "scipy_units", "torch_fn", "torch_lite0",
    # report
    "BARS_TORCH", "COLORS", "METHOD_ORDER", "best_scipy", "evaluate_bars", "merge_results", "to_json",
    "to_markdown", "write_charts",
    # runner
    "Config", "Runner", "first_call_times",
]


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
