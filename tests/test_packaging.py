"""The built wheel ships fastconv.kernels (CPU kernels and CUDA sources) and imports elsewhere."""
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), str(ROOT)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}")
    wheels = list(out.glob("fastconv-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contains_the_kernels(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("fastconv/__init__.py", "fastconv/kernels/__init__.py",
                     "fastconv/kernels/cpu/direct.py", "fastconv/kernels/cpu/im2col.py",
                     "fastconv/kernels/cuda/__init__.py", "fastconv/geometry.py"):
        assert required in names, f"{required} missing from {wheel.name}"
    cu = [n for n in names if n.startswith("fastconv/kernels/cuda/") and n.endswith(".cu")]
    src = list((ROOT / "kernels" / "cuda").glob("*.cu"))
    assert len(cu) == len(src), f"CUDA sources in the wheel {cu} vs in the tree {[s.name for s in src]}"


def test_wheel_imports_in_a_fresh_venv(wheel, tmp_path):
    """A new venv with only the wheel on its path (dependencies borrowed) computes a conv."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    deps = sysconfig.get_paths()["purelib"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), deps]),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    code = ("import fastconv, numpy as np;"
            "assert fastconv.__file__.startswith(%r), fastconv.__file__;"
            "import fastconv.kernels.cpu.direct as d; assert d.__file__.startswith(%r);"
            "y = fastconv.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)));"
            "assert (y == 9).all(); print('ok')") % (str(target), str(target))
    py = venv / "bin" / "python"
    proc = subprocess.run([str(py), "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
