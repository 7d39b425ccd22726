"""The threading layer fastconv selects when it is imported (``fastconv/_runtime.py``)."""
import os
import subprocess
import sys
import tempfile

import pytest


def _run(code: str):
    """``code`` in a fresh interpreter, outside the checkout (whose fastconv/ lacks kernels/)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    return subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tempfile.gettempdir())


def test_importing_fastconv_first_selects_workqueue():
    proc = _run("import fastconv, numba; numba.set_num_threads(1); print(numba.threading_layer())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "workqueue"
    assert "RuntimeWarning" not in proc.stderr


def test_threads_started_with_another_layer_before_the_import_are_reported():
    proc = _run("import numba\n"
                "numba.config.THREADING_LAYER = 'omp'\n"
                "try:\n"
                "    numba.set_num_threads(1)\n"
                "except (ValueError, ImportError):\n"
                "    raise SystemExit(3)\n"
                "import fastconv\n")
    if proc.returncode == 3:
        pytest.skip("Numba's OpenMP layer is not available here")
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" in proc.stderr and "'omp' threading layer" in proc.stderr
    assert "NUMBA_THREADING_LAYER=workqueue" in proc.stderr
