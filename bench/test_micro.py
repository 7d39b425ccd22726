"""pytest-benchmark micro benchmarks: one op, one algorithm, one anchor shape per benchmark.

Run with ``pytest bench/ --benchmark-only`` (the main suite's testpaths=["tests"] never collects
this directory). Compare groups with ``--benchmark-group-by=group`` (the default here: one group
per op and shape, so fastconv's algorithms and PyTorch sit side by side).

What: float32 NCHW, the shapes of ANCHORS.md (a1, a3, c, d, e, f2 forward; a1 and e input and
weight gradients), every fastconv CPU algorithm plus PyTorch (skipped when not installed).
Threads: 2 for Numba, BLAS/OpenMP and torch (FASTCONV_BENCH_THREADS overrides). pytest-benchmark
reports min, max, mean, median and rounds; the first call (Numba compile or cache load) happens
before timing. Memory: glibc mallopt as in ``fastconv.bench`` (freed blocks reused).
"""
import os
import tempfile

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "fastconv-numba-cache"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastconv import bench as B  # noqa: E402
from fastconv.backends import cpu  # noqa: E402

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))
FORWARD = ["a1", "a3", "c", "d", "e", "f2"]
GRADS = ["a1", "e"]
ALGOS = list(cpu.ALGOS)
_CASES = {c.id: c for c in B.ANCHOR_CASES}


@pytest.fixture(scope="module", autouse=True)
def _policy():
    """Threads and malloc policy for the whole module; the previous thread counts come back after."""
    B.set_malloc_policy(True)
    info, restore = B.setup_threads(THREADS)
    import fastconv
    fastconv.warm()
    yield info
    restore()


def _data(case):
    return B.make_data(case, np.random.default_rng(0))


def _skip_unless_applies(case, algo):
    if not B.fastconv_algo_applies(case, algo):
        pytest.skip(f"algo={algo!r} does not cover (or is not timed on) {case.id}: {case.title}")


def _info(benchmark, case, what):
    benchmark.group = f"{case.id} {what}: {case.title}"
    benchmark.extra_info.update(gflop=case.flops / 1e9, threads=THREADS, dtype="float32")


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("cid", FORWARD)
def test_forward_fastconv(benchmark, cid, algo):
    case = _CASES[cid]
    _skip_unless_applies(case, algo)
    d = _data(case)
    fn = B.fastconv_fn(case, d, algo)
    out = fn()
    assert B.rel_err(out, B.reference(case, d)) < B.ERR_FLAG
    _info(benchmark, case, "forward")
    benchmark(fn)


@pytest.mark.parametrize("cid", FORWARD)
def test_forward_torch(benchmark, cid):
    pytest.importorskip("torch")
    case = _CASES[cid]
    fn = B.torch_fn(case, _data(case))
    fn()
    _info(benchmark, case, "forward")
    benchmark(fn)


def _grad_fns(case, d, algo):
    """(grad_input, grad_weight) closures of one fastconv algorithm for a conv or transposed case."""
    import fastconv.grad as G
    x, w, gy, s, p = d["x"], d["w"], d["gy"], case.s, case.p
    if case.kind == "conv":
        return (lambda: G.conv2d_input(x.shape, w, gy, stride=s, padding=p, algo=algo),
                lambda: G.conv2d_weight(x, w.shape, gy, stride=s, padding=p, algo=algo))
    return (lambda: G.conv_transpose2d_input(x.shape, w, gy, stride=s, padding=p, algo=algo),
            lambda: G.conv_transpose2d_weight(x, w.shape, gy, stride=s, padding=p, algo=algo))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("which", ["grad_input", "grad_weight"])
@pytest.mark.parametrize("cid", GRADS)
def test_grad_fastconv(benchmark, cid, which, algo):
    _skip_unless_applies(_CASES[cid], algo)
    case = B.dataclasses.replace(_CASES[cid], grad=True)
    d = _data(case)
    gin, gw = _grad_fns(case, d, algo)
    fn = gin if which == "grad_input" else gw
    ref = B.reference(case, d)[1 if which == "grad_input" else 2]
    assert B.rel_err(fn(), ref) < B.ERR_FLAG
    _info(benchmark, B.dataclasses.replace(case, grad=False), which)
    benchmark(fn)


@pytest.mark.parametrize("which", ["grad_input", "grad_weight"])
@pytest.mark.parametrize("cid", GRADS)
def test_grad_torch(benchmark, cid, which):
    torch = pytest.importorskip("torch")
    from torch.nn import grad as TG
    case = B.dataclasses.replace(_CASES[cid], grad=True)
    d = _data(case)
    x, w, gy = (torch.from_numpy(d[k]) for k in ("x", "w", "gy"))
    s, p = case.s, case.p
    if case.kind == "conv":
        fns = {"grad_input": lambda: TG.conv2d_input(x.shape, w, gy, stride=s, padding=p),
               "grad_weight": lambda: TG.conv2d_weight(x, w.shape, gy, stride=s, padding=p)}
    else:  # the transposed conv's input gradient is a conv2d, its weight gradient a conv2d_weight
        fns = {"grad_input": lambda: torch.nn.functional.conv2d(gy, w, stride=s, padding=p),
               "grad_weight": lambda: TG.conv2d_weight(gy, w.shape, x, stride=s, padding=p)}
    fn = fns[which]
    ref = B.reference(case, d)[1 if which == "grad_input" else 2]
    assert B.rel_err(fn(), ref) < B.ERR_FLAG
    _info(benchmark, B.dataclasses.replace(case, grad=False), which)
    benchmark(fn)
