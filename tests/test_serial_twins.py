"""Small convolutions run each kernel's serial twin; both variants against the references.

A convolution of fewer than ``SERIAL_MACS`` multiply-adds runs the serial twin of each parallel
kernel (``kernels/cpu/_common.py``), so most of this suite's small shapes take that path. Here
both paths are forced in turn on the same cases: forward against ``oracle.ref_conv``, and both
gradients by the adjoint identities <gy, conv(x, w)> = <x, grad_input(gy)> = <w, grad_weight(x, gy)>.
The parallel run is the one that would show two threads writing one element.
"""
import numpy as np
import pytest

import fastconv
from fastconv import grad
from fastconv.kernels.cpu import _common
from oracle import ref_conv, rel_err, same_pairs

TOL = {np.float32: 2e-5, np.float64: 1e-12}

# (N, C_in, C_out, H, W, k, stride, padding, dilation, groups): direct, tiled GEMM (several row
# tiles and chunks: N*groups*row tiles > 2 threads), depthwise with a multiplier, grouped
CASES = [
    (1, 3, 2, 9, 7, (3, 3), (1, 1), 1, (1, 1), 1),
    (3, 4, 6, 10, 9, (3, 2), (2, 1), "same", (1, 2), 2),
    (2, 6, 12, 11, 8, (3, 3), (1, 1), 1, (1, 1), 6),
    (4, 8, 8, 12, 12, (3, 3), (2, 2), ((1, 0), (2, 1)), (1, 1), 1),
    (2, 5, 7, 1, 40, (1, 5), (1, 3), "valid", (1, 2), 1),
]


@pytest.fixture(params=["serial", "parallel"])
def path(request, monkeypatch):
    monkeypatch.setattr(_common, "SERIAL_MACS", 1 << 62 if request.param == "serial" else 0)
    return request.param


def test_a_small_problem_takes_the_twin_and_a_large_one_the_parallel_kernel():
    twins = _common._serial_twins
    assert len(twins) >= 10
    for kernel, twin in twins.items():
        assert _common.for_work(kernel, _common.SERIAL_MACS - 1) is twin
        assert _common.for_work(kernel, _common.SERIAL_MACS) is kernel
        assert kernel.targetoptions.get("parallel") and not twin.targetoptions.get("parallel")
        # a name of its own: Numba caches the two compilations apart
        assert twin.py_func.__qualname__ == kernel.py_func.__qualname__ + "_serial"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ["direct", "im2col"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"-g{c[-1]}")
def test_both_paths_match_the_reference(path, algo, dtype, case):
    N, C, O, H, W, k, stride, padding, dilation, groups = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((O, C // groups) + k)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    pads = (same_pairs((H, W), k, stride, dilation) if padding == "same" else [(0, 0)] * 2 if padding == "valid"
            else [(padding, padding)] * 2 if isinstance(padding, int) else list(padding))
    ref = ref_conv(x, w, stride, pads, dilation, groups)
    xd, wd = x.astype(dtype), w.astype(dtype)
    assert rel_err(fastconv.conv2d(xd, wd, algo=algo, **kw), ref) < TOL[dtype]
    gy = rng.standard_normal(ref.shape)
    gx = grad.conv2d_input(x.shape, wd, gy.astype(dtype), algo=algo, **kw)
    gw = grad.conv2d_weight(xd, w.shape, gy.astype(dtype), algo=algo, **kw)
    inner = float((gy * ref).sum())
    scale = float(np.abs(gy).sum() * np.abs(ref).max())
    assert abs(float((x * gx).sum()) - inner) < TOL[dtype] * scale
    assert abs(float((w * gw).sum()) - inner) < TOL[dtype] * scale


def test_the_cases_are_small_enough_for_the_twins_by_default():
    for N, C, O, H, W, k, *_, groups in CASES:
        assert N * O * H * W * (C // groups) * k[0] * k[1] < _common.SERIAL_MACS


@pytest.mark.parametrize("elements", [0, 1 << 62], ids=["parallel", "serial"])
def test_the_epilogue_kernels_on_both_paths(monkeypatch, elements):
    from fastconv.backends import cpu
    monkeypatch.setattr(cpu, "PARALLEL_ELEMENTS", elements)
    rng = np.random.default_rng(3)
    y = 4 * rng.standard_normal((3, 5, 7, 6))
    b = rng.standard_normal(5)
    want = np.clip(y + b[:, None, None], 0, 6)
    cpu.bias_clip_(y, b, 0.0, 6.0)
    np.testing.assert_array_equal(y, want)
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(cpu.clip_grad(g, y, 0.0, 6.0), np.where((y > 0) & (y < 6), g, 0))


def test_tiles_split_for_threads_only_in_parallel_and_never_into_slivers(monkeypatch):
    """A serial run multiplies whole cache-sized tiles (each tile costs a BLAS call and the setup
    of its column rows); a parallel run splits a small image for the threads, but into no more
    tiles than MIN_TILE_COLUMNS pixels per tile allow; the tiles of an image are of even size."""
    import numba
    from fastconv.backends import cpu
    from fastconv.geometry import conv_geometry
    g = conv_geometry((1, 32, 14, 14), (32, 32, 3, 3), 1, 1, 1, 1)     # 1.8 M multiply-adds
    monkeypatch.setattr(_common, "SERIAL_MACS", g.macs + 1)
    assert cpu._tile_rows(g, np.float32, 1) == 14 and cpu._chunks(g, 1) == 1
    monkeypatch.setattr(_common, "SERIAL_MACS", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    assert cpu._tile_rows(g, np.float32, 1) == 7      # 2 tiles: 4 of 49 pixels would be slivers
    wide = conv_geometry((1, 8, 64, 64), (8, 8, 3, 3), 1, 1, 1, 1)       # 28 rows would fit a tile
    assert cpu._tile_rows(wide, np.float32, 1) == 64 // 4                # 4 tiles for 2 threads
    e = conv_geometry((8, 32, 56, 56), (64, 32, 4, 4), 2, 1, 1, 1)       # case e's input gradient
    assert e.out_size == (28, 28) and cpu._tile_rows(e, np.float32, 8) == 7   # not 9, 9, 9, 1
