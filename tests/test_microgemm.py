"""fastconv's own GEMM (kernels/cpu/microgemm.py) against a float64 NumPy product."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

from fastconv.kernels.cpu import microgemm


@njit(cache=True)
def _gemm(trans_a, m, n, k, a, lda, b, ldb, c, ldc, beta):
    microgemm.gemm(trans_a, m, n, k, a, lda, b, ldb, c, ldc, beta)


@given(dtype=st.sampled_from([np.float32, np.float64]), trans_a=st.booleans(),
       m=st.integers(1, 40), n=st.integers(1, 150), k=st.integers(0, 300),
       pads=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
       beta=st.sampled_from([0.0, 1.0, -0.5]), seed=st.integers(0, 2**16))
def test_gemm_matches_numpy(dtype, trans_a, m, n, k, pads, beta, seed):
    """c = op(a) @ b + beta * c on panels whose rows are longer than the product needs; the
    elements past column n are not touched, and with beta == 0 c is not read (NaN stays out)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m + pads[0]) if trans_a else (m, k + pads[0])).astype(dtype)
    b = rng.standard_normal((k, n + pads[1])).astype(dtype)
    c0 = rng.standard_normal((m, n + pads[2])).astype(dtype)
    c = c0.copy()
    if beta == 0.0:
        c[:, :n] = np.nan
    a_before, b_before = a.copy(), b.copy()
    _gemm(trans_a, m, n, k, a, a.shape[1], b, b.shape[1], c, c.shape[1], beta)
    op_a = a[:, :m].T if trans_a else a[:, :k]
    want = op_a.astype(np.float64) @ b[:, :n] + beta * c0[:, :n]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(c[:, :n] - want).max() <= tol * (1 + np.abs(want).max())
    assert np.array_equal(c[:, n:], c0[:, n:])
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before)


def test_gemm_writes_through_strided_views():
    """Panels given as views into larger arrays (as the kernels pass y[n, o0:, y0:]): rows are
    ldc apart in flat memory, past the view's own bounds."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((10, 27)).astype(np.float32)
    cols = rng.standard_normal((27, 3 * 70)).astype(np.float32)
    y = np.zeros((2, 10, 5, 70), np.float32)
    _gemm(False, 10, 3 * 70, 27, w, 27, cols, 3 * 70, y[1, 0:, 2:], 5 * 70, 0.0)
    want = (w.astype(np.float64) @ cols).reshape(10, 3, 70)
    np.testing.assert_allclose(y[1, :, 2:], want, rtol=1e-5, atol=1e-5)
    assert not y[0].any() and not y[1, :, :2].any()


@njit(cache=True)
def _gemm_bias_clip(m, n, k, a, b, c, ldc, bias, lo, hi):
    microgemm.gemm_bias_clip(m, n, k, a, a.shape[1], b, b.shape[1], c, ldc, bias, lo, hi)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", [(64, 3 * 64, 27), (10, 100, 300), (7, 5, 1), (13, 64 * 2 + 17, 64)])
def test_gemm_bias_clip(dtype, m, n, k):
    """The fused epilogue: clip(a @ b + bias, lo, hi) row by row, on full and narrow panels and
    across depth blocks; NaN from the product stays NaN (clip by comparisons, as np.clip)."""
    rng = np.random.default_rng(m * n + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    b[0, n // 2] = np.nan
    bias = rng.standard_normal(m).astype(dtype)
    c = np.full((m, n + 3), 5.0, dtype)
    _gemm_bias_clip(m, n, k, a, b, c, n + 3, bias, dtype(-0.5), dtype(1.5))
    want = np.clip(a.astype(np.float64) @ b + bias[:, None], -0.5, 1.5)
    np.testing.assert_allclose(c[:, :n], want, rtol=1e-5, atol=1e-5)
    assert np.isnan(c[:, n // 2]).all() and (c[:, n:] == 5.0).all()


def _tile_runner(kernel):
    @njit
    def run(k, a, b, c, mr, beta):
        kernel(k, a, 0, k, 1, b, 0, c.size // microgemm.MR, c, 0, c.size // microgemm.MR, mr, beta)
    return run


@pytest.mark.parametrize("vector_bytes,nv", [(64, 1), (64, 2), (64, 3), (64, 4), (32, 1), (32, 2), (16, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_micro_kernel_shapes(vector_bytes, nv, dtype):
    """Every register shape the module may pick on some CPU (AVX-512, AVX2, SSE/NEON) computes
    its MR x NR tile, for every count of valid rows: the IR is the same for any host, LLVM splits
    vectors wider than the host's."""
    nr = microgemm.panel_width(dtype, nv, vector_bytes)
    run = _tile_runner(microgemm.make_micro_kernel(nv, vector_bytes))
    rng = np.random.default_rng(nv)
    k = 37
    a = rng.standard_normal((microgemm.MR, k)).astype(dtype)
    b = rng.standard_normal((k, nr)).astype(dtype)
    for mr in range(1, microgemm.MR + 1):
        c = np.full((microgemm.MR, nr), 7.0, dtype)
        run(k, a.ravel(), b, c.ravel(), mr, 1.0)
        want = 7.0 + a.astype(np.float64) @ b
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.abs(c[:mr] - want[:mr]).max() <= tol * np.abs(want).max()
        assert (c[mr:] == 7.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_large_product(dtype):
    """A product the size of the whole-image paths' (several depth blocks, many column panels,
    a narrow last panel); A transposed and not, beta 0 and 1."""
    rng = np.random.default_rng(7)
    m, n, k = 200, 700, 300
    for trans_a in (False, True):
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        for beta in (0.0, 1.0):
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            _gemm(trans_a, m, n, k, a, a.shape[1], b, n, c, n, beta)
            want = (a.T if trans_a else a).astype(np.float64) @ b + beta * c0
            tol = 1e-5 if dtype == np.float32 else 1e-12
            assert np.abs(c - want).max() <= tol * np.abs(want).max()
