"""Test-session setup: a writable Numba cache, kernels warmed once, hypothesis profiles."""
import os
import sys
import tempfile



def _kernel_sources_digest() -> str:
    """A digest of kernels/cpu/*.py. Numba revalidates a cached kernel against its own file
    only, not the files whose functions it inlines or calls (gemm.py calls microgemm.py and
    im2col.py), so an edit to one of those would leave stale machine code in a fixed cache."""
    import glob
    import hashlib
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels", "cpu")
    h = hashlib.sha1()
    for path in sorted(glob.glob(os.path.join(root, "*.py"))):
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


os.environ.setdefault("NUMBA_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"fastconv-numba-cache-{_kernel_sources_digest()}"))
sys.path.insert(0, os.path.dirname(__file__))  # tests/oracle.py

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Compile (or load) every CPU kernel once, so no test pays for it and timings stay sane."""
    import fastconv
    fastconv.warm()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
