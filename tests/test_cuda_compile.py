"""CI for the CUDA backend on machines without a GPU.

* Every ``kernels/cuda/*.cu`` module compiles with nvcc for sm_90 with the options and the
  exact name expressions the RawModule loader uses (both read fastconv.backends._cuda_src),
  without a warning; ptxas' report of every kernel stays under the register budget with no
  spills. The name expressions are instantiated the way NVRTC does it: by taking the address
  of each ``__global__`` specialization in the translation unit.
* The implicit-GEMM gather tables (the only index arithmetic of the GPU side that is built in
  Python) reproduce the CPU engine when played through a NumPy model of the kernel.
* fastconv never imports CuPy for CPU work, and asking for CUDA without it is a clear error.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

from fastconv.backends import _cuda_src as src

#: ptxas registers per thread allowed per kernel family. The 8x8-register-tile implicit GEMM
#: holds 64 accumulators plus 16-deep prefetch registers (191 on sm_90 with nvcc 13); its launch
#: bounds ask for one block of 256 threads per SM, which allows 255. Everything else is a
#: one-thread-per-element loop that should fit in 64 (full occupancy on sm_90).
REGISTER_BUDGET = {"igemm": 200, "conv": 64, "im2col": 64, "pool": 64, "winograd": 64}
ARCH = "sm_90"
DTYPES = ("float32", "float64")


def _nvcc():
    for cand in (shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and os.path.exists(cand):
            return cand
    return None


NVCC = _nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


def translation_unit(module: str) -> str:
    """The module's source as RawModule gets it, plus one address-of per name expression."""
    lines = [src.kernel_source(module), "", "// ---- name expressions (as NVRTC instantiates them)"]
    for d in DTYPES:
        for i, expr in enumerate(src.name_expressions(module, d)):
            lines.append(f"[[maybe_unused]] static void* fc_name_expr_{d}_{i} = (void*)&{expr};")
    return "\n".join(lines) + "\n"


def _demangle(names):
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt:
        return list(names)
    out = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True).stdout
    return out.splitlines()


def _expr_of(demangled: str) -> str:
    """'void igemm_conv<float, 128, ...>(float const*, ...)' -> 'igemm_conv<float,128,...>'."""
    s = demangled.strip()
    s = s[5:] if s.startswith("void ") else s
    depth = 0
    for k, ch in enumerate(s):  # cut the parameter list: the first '(' outside template brackets
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            s = s[:k]
            break
    return s.replace(" ", "")


def ptxas_report(text: str):
    """{kernel mangled name: dict(registers, spill_stores, spill_loads, stack, smem)}."""
    report, current = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = m.group(1)
            report[current] = dict(registers=None, spill_stores=0, spill_loads=0, stack=0, smem=0)
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            report[current].update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                                   spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            report[current]["registers"] = int(m.group(1))
            m2 = re.search(r"(\d+) bytes smem", line)
            report[current]["smem"] = int(m2.group(1)) if m2 else 0
    return report


@needs_nvcc
@pytest.mark.parametrize("module", sorted(src.MODULES))
def test_cuda_module_compiles_within_register_budget(module, tmp_path):
    cu = tmp_path / f"{module}.cu"
    cu.write_text(translation_unit(module))
    cmd = [NVCC, "-cubin", f"-arch={ARCH}", *src.compile_options(), "-Xptxas", "-v",
           str(cu), "-o", str(tmp_path / f"{module}.cubin")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, f"nvcc failed on {src.MODULES[module]}:\n{log}"
    assert "warning" not in log.lower(), f"nvcc warned on {src.MODULES[module]}:\n{log}"

    report = ptxas_report(log)
    exprs = {e for d in DTYPES for e in src.name_expressions(module, d)}
    names = dict(zip(_demangle(list(report)), report.values()))
    if shutil.which("c++filt"):
        got = {_expr_of(n) for n in names}
        assert got == exprs, f"compiled {sorted(got)}, expected the name expressions {sorted(exprs)}"
    else:  # pragma: no cover - binutils missing
        assert len(report) == len(exprs)

    budget = REGISTER_BUDGET[module]
    table = ["", f"{src.MODULES[module]} ({ARCH}): kernel, registers, spill stores/loads, stack, smem"]
    for n, r in sorted(names.items()):
        table.append(f"  {_expr_of(n):40s} {r['registers']:4d} regs  {r['spill_stores']}/{r['spill_loads']} B spill"
                     f"  {r['stack']} B stack  {r['smem']} B smem")
    print("\n".join(table))
    for n, r in names.items():
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, f"{n} spills: {r}"
        assert r["registers"] is not None and r["registers"] <= budget, f"{n} uses {r['registers']} > {budget} registers"


def test_every_source_file_is_compiled():
    """No .cu file in kernels/cuda escapes the compile check (headers are inlined into them)."""
    from importlib import resources
    files = {p.name for p in resources.files("fastconv.kernels.cuda").iterdir() if p.name.endswith(".cu")}
    assert files == set(src.MODULES.values())
    for module in src.MODULES:
        assert "#include" not in src.kernel_source(module).replace('#include "', "")  # no system headers


# ----------------------------------------------------------------------------- gather tables
def _emulate_igemm(inp, w, out_shape, plan):
    """NumPy model of kernels/cuda/implicit_gemm.cu: same tables, same index arithmetic.

    Unwritten outputs stay NaN, so a pixel no phase covers fails the comparison.
    """
    s = dict(zip((n.split(":")[0] for n in src.IGEMM_SCALARS), plan.scalars))
    out = np.full(int(np.prod(out_shape)), np.nan, inp.dtype)
    fin, fw = inp.ravel(), w.ravel()
    for g in range(fw.size // s["w_grp"]):
        for kstart, K, PU, PV, oy0, ox0 in plan.phases.tolist():
            P = s["Nimg"] * PU * PV
            if P == 0:
                continue
            p = np.arange(P)
            n, r = p // (PU * PV), p % (PU * PV)
            u, v = r // PV, r % PV
            ya, xa = u * s["su"] + s["ou"], v * s["sv"] + s["ov"]
            base = g * s["in_grp"] + n * s["in_img"] + ya * s["Win"] + xa
            tab = plan.ktab[kstart:kstart + K].astype(np.int64)
            B = np.zeros((K, P), inp.dtype)
            for k in range(K):
                ok = ((ya + tab[k, 1] >= 0) & (ya + tab[k, 1] < s["Hin"])
                      & (xa + tab[k, 2] >= 0) & (xa + tab[k, 2] < s["Win"]))
                B[k, ok] = fin[base[ok] + tab[k, 0]]
            m = np.arange(s["M"])
            A = fw[g * s["w_grp"] + m[:, None] * s["w_m"] + tab[None, :, 3]]
            dst = g * s["out_grp"] + n * s["out_img"] + (u * s["tu"] + oy0) * s["Wout"] + (v * s["tv"] + ox0)
            out[dst[None, :] + m[:, None] * s["out_plane"]] = A @ B
    return out.reshape(out_shape)


def _geometries():
    from fastconv.geometry import conv_geometry
    for (H, W), k, s, d, p, G in itertools.product(
            [(7, 9), (1, 13)], [(3, 3), (2, 4), (1, 1)], [1, 2, 3], [1, 2],
            [0, 1, ((2, 0), (1, 3))], [1, 2]):
        if H == 1:  # a 1-D convolution: height 1, kernel height 1, no height padding
            k, p = (1, k[1]), ((0, 0), (p, p) if isinstance(p, int) else p[1])
        try:
            yield conv_geometry((2, 4, H, W), (6, 4 // G) + k, s, p, d, G)
        except ValueError:  # kernel larger than the padded input
            continue


def test_implicit_gemm_tables_reproduce_the_cpu_engine():
    from fastconv.backends import cpu
    rng = np.random.default_rng(0)
    geoms = list(_geometries())
    assert len(geoms) > 100
    for g in geoms:
        x, w, dy = (rng.standard_normal(s) for s in (g.x_shape, g.w_shape, g.y_shape))
        y = _emulate_igemm(x, w, g.y_shape, src.igemm_plan(g, "forward"))
        np.testing.assert_allclose(y, cpu.conv_forward(x, w, g, "direct"), rtol=1e-12, atol=1e-12, err_msg=str(g))
        dx = _emulate_igemm(dy, w, g.x_shape, src.igemm_plan(g, "grad_input"))
        np.testing.assert_allclose(dx, cpu.conv_grad_input(dy, w, g, "direct"), rtol=1e-12, atol=1e-12,
                                   err_msg=str(g))


def test_grad_input_phases_skip_structural_zeros():
    """A stride-2 4x4 transposed conv does 1/4 of the dense taps: 2x2 per phase, 4 phases."""
    from fastconv.geometry import conv_geometry
    g = conv_geometry((1, 32, 56, 56), (64, 32, 4, 4), 2, 1)
    plan = src.igemm_plan(g, "grad_input")
    assert plan.nphase == 4 and plan.phases[:, 1].tolist() == [64 * 4] * 4


# ----------------------------------------------------------------------------- no CuPy on the CPU path
def _run(code: str):
    # run outside the checkout: with cwd on sys.path, the source folder fastconv/ (which has no
    # kernels/ inside) would shadow the installed package
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=tempfile.gettempdir(),
                          env={**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "/tmp/nbcache")})


def test_cpu_work_never_imports_cupy():
    res = _run("""
        import sys
        import numpy as np
        import fastconv
        x = np.ones((1, 2, 5, 5), np.float32); w = np.ones((3, 2, 3, 3), np.float32)
        y = fastconv.conv2d(x, w, padding=1)
        fastconv.grad.conv2d_weight(x, w.shape, y, padding=1)
        fastconv.conv_transpose2d(y, w, padding=1)  # weight (C_in=3, C_out=2, 3, 3)
        assert 'cupy' not in sys.modules, 'cupy was imported'
        assert 'fastconv.backends.cuda' not in sys.modules
        print('ok')
    """)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_cuda_without_cupy_is_a_clear_error():
    res = _run("""
        import sys
        sys.modules['cupy'] = None          # makes `import cupy` raise ImportError, as if absent
        import fastconv
        from fastconv.backends import get_backend
        try:
            get_backend(device='cuda')
        except RuntimeError as exc:
            print('RuntimeError:', exc)
        else:
            raise SystemExit('no error')
    """)
    assert res.returncode == 0, res.stderr
    assert "RuntimeError: the CUDA backend is unavailable" in res.stdout
    assert "cupy" in res.stdout.lower()


def test_cuda_modules_compile_with_nvrtc():
    """The RawModule path itself: NVRTC (cupy.cuda.nvrtc) with the same name expressions.

    Runs where CuPy and the nvidia-cuda-nvrtc library are installed, GPU or not; skipped otherwise.
    """
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # CuPy or libnvrtc missing
        pytest.skip(f"NVRTC through CuPy unavailable: {exc}")
    # CuPy's RawModule adds --device-as-default-execution-space for NVRTC >= 12 (cupy/cuda/compiler.py);
    # without it a lambda inside a kernel counts as a host function (seen on a real H200, CUDA 13)
    extra = ["--device-as-default-execution-space"] if nvrtc.getVersion()[0] >= 12 else []
    for module in src.MODULES:
        for d in DTYPES:
            exprs = list(src.name_expressions(module, d))
            prog = nvrtc.createProgram(src.kernel_source(module), f"{module}.cu", [], [])
            for e in exprs:
                nvrtc.addNameExpression(prog, e)
            try:
                nvrtc.compileProgram(prog, list(src.compile_options()) + extra + ["-arch=compute_90"])
            except Exception as exc:
                pytest.fail(f"NVRTC failed on {module} {d}: {exc}\n{nvrtc.getProgramLog(prog)}")
            assert all(nvrtc.getLoweredName(prog, e) for e in exprs)
            assert "warning" not in nvrtc.getProgramLog(prog).lower()


def test_moving_to_cuda_without_cupy_is_a_clear_error():
    """Tensor.to('cuda') / Module.to('cuda') name the missing piece instead of failing deep inside."""
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: moving to the GPU is exercised by tests/test_gpu.py")
    res = _run("""
        import numpy as np
        import fastconv
        from fastconv import nn
        for move in (lambda: fastconv.Tensor(np.ones(3)).to('cuda'), lambda: nn.Linear(2, 2).to('cuda')):
            try:
                move()
            except RuntimeError as exc:
                assert 'CUDA backend is unavailable' in str(exc), exc
            else:
                raise AssertionError('moving to cuda without CuPy did not raise')
        t = fastconv.Tensor(np.ones(3), requires_grad=True).to('cpu')
        assert t.device == 'cpu' and t.requires_grad
        print('ok')
    """)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
