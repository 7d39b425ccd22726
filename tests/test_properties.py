"""Property tests over random shapes and parameters (hypothesis; derandomized when CI is set)."""
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import grad
from oracle import ref_conv, ref_conv_transpose, rel_err


@st.composite
def conv_setups(draw, max_spatial=2):
    nd = draw(st.integers(1, max_spatial))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 12)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    kind = draw(st.sampled_from(["int", "pairs", "same", "valid"]))
    if kind == "int":
        padding = draw(st.integers(0, 3))
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    else:
        padding = kind
    n = draw(st.integers(1, 2))
    return dict(nd=nd, x_shape=(n, cin) + size, w_shape=(cout, cin // groups) + k, stride=stride,
                dilation=dil, padding=padding, groups=groups)


def _pad_pairs(s):
    x_shape, w_shape = s["x_shape"], s["w_shape"]
    p = s["padding"]
    nd = s["nd"]
    if p == "valid":
        return [(0, 0)] * nd
    if p == "same":
        out = []
        for n, k, st_, d in zip(x_shape[2:], w_shape[2:], s["stride"], s["dilation"]):
            total = max((-(-n // st_) - 1) * st_ + (k - 1) * d + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(p, int):
        return [(p, p)] * nd
    return list(p)


def _fits(s):
    pairs = _pad_pairs(s)
    return all(n + lo + hi >= (k - 1) * d + 1
               for n, k, d, (lo, hi) in zip(s["x_shape"][2:], s["w_shape"][2:], s["dilation"], pairs))


def _conv(s):
    return fastconv.conv1d if s["nd"] == 1 else fastconv.conv2d


def _kw(s):
    return dict(stride=s["stride"] if s["nd"] == 2 else s["stride"][0],
                dilation=s["dilation"] if s["nd"] == 2 else s["dilation"][0],
                padding=s["padding"] if not isinstance(s["padding"], tuple) or s["nd"] == 2 else list(s["padding"]),
                groups=s["groups"])


@given(conv_setups(), st.sampled_from(["direct", "im2col", "fft"]))
def test_output_shape_formula_and_linearity(s, algo):
    assume(_fits(s))
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal(s["x_shape"]), rng.standard_normal(s["x_shape"])
    w = rng.standard_normal(s["w_shape"])
    conv, kw = _conv(s), _kw(s)
    y1 = conv(x1, w, algo=algo, **kw)
    expected = tuple((n + lo + hi - d * (k - 1) - 1) // st_ + 1 for n, k, st_, d, (lo, hi) in
                     zip(s["x_shape"][2:], s["w_shape"][2:], s["stride"], s["dilation"], _pad_pairs(s)))
    assert y1.shape == (s["x_shape"][0], s["w_shape"][0]) + expected
    assert fastconv.output_shape(s["x_shape"], s["w_shape"], **kw) == y1.shape
    y12 = conv(2.0 * x1 - 3.0 * x2, w, algo=algo, **kw)
    # relative to the largest |y12| the inputs allow, not to the output: an output of padding
    # only is exactly 0 in the direct sums but carries rounding in the FFT's (1e-17 here)
    bound = 5.0 * max(np.abs(x1).max(), np.abs(x2).max()) * np.abs(w).sum()
    assert np.abs(y12 - (2.0 * y1 - 3.0 * conv(x2, w, algo=algo, **kw))).max() <= 1e-12 * bound


@given(conv_setups())
def test_groups_equal_concatenated_per_group_convolutions(s):
    assume(_fits(s))
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(s["x_shape"]), rng.standard_normal(s["w_shape"])
    conv, kw = _conv(s), _kw(s)
    g = kw.pop("groups")
    cg, og = x.shape[1] // g, w.shape[0] // g
    parts = [conv(x[:, i * cg:(i + 1) * cg], w[i * og:(i + 1) * og], **kw) for i in range(g)]
    assert rel_err(conv(x, w, groups=g, **kw), np.concatenate(parts, axis=1)) < 1e-12


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(1, 9), st.integers(1, 9))
def test_pointwise_equals_matmul(n, cin, cout, h, w_):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((n, cin, h, w_)), rng.standard_normal((cout, cin, 1, 1))
    for algo in ("direct", "im2col"):
        y = fastconv.conv2d(x, w, algo=algo)
        assert rel_err(y, np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)) < 1e-12


@given(conv_setups())
def test_conv_matrix_is_the_convolution_and_its_transpose(s):
    assume(_fits(s))
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(s["x_shape"]), rng.standard_normal(s["w_shape"])
    conv, kw = _conv(s), _kw(s)
    C = fastconv.conv_matrix(w, s["x_shape"], **kw)
    y = conv(x, w, **kw)
    assert rel_err(C @ x.ravel(), y.ravel()) < 1e-12
    v = rng.standard_normal(y.shape)
    gi = (grad.conv1d_input if s["nd"] == 1 else grad.conv2d_input)(x.shape, w, v, **kw)
    assert rel_err(C.T @ v.ravel(), gi.ravel()) < 1e-12


@given(conv_setups(), st.data())
def test_transposed_conv_is_C_transpose(s, data):
    """conv_transpose with output_padding picks the input size; it must still equal C^T."""
    assume(_fits(s))
    rng = np.random.default_rng(4)
    w = rng.standard_normal(s["w_shape"])
    kw = _kw(s)
    y_shape = fastconv.output_shape(s["x_shape"], s["w_shape"], **kw)
    pads = _pad_pairs(s)
    # the output_padding that recovers the original input size from y's size, if one exists
    ops = []
    for n, k, st_, d, (lo, hi), m in zip(s["x_shape"][2:], s["w_shape"][2:], s["stride"], s["dilation"],
                                         pads, y_shape[2:]):
        ops.append(n - ((m - 1) * st_ - lo - hi + d * (k - 1) + 1))
    assume(all(0 <= op < max(st_, d) for op, st_, d in zip(ops, s["stride"], s["dilation"])))
    v = rng.standard_normal(y_shape)
    tconv = fastconv.conv_transpose1d if s["nd"] == 1 else fastconv.conv_transpose2d
    tkw = dict(stride=kw["stride"], dilation=kw["dilation"], groups=kw["groups"],
               padding=[tuple(p) for p in pads] if s["nd"] == 2 else [tuple(pads[0])],
               output_padding=tuple(ops) if s["nd"] == 2 else ops[0])
    # PyTorch's transposed weight (C_in_t, C_out_t/g, k) has C_in_t = the forward conv's C_out:
    # the forward weight array serves both, unchanged
    C = fastconv.conv_matrix(w, s["x_shape"], **kw)
    out = tconv(v, w, **tkw)
    assert out.shape == tuple(s["x_shape"])
    assert rel_err(out.ravel(), C.T @ v.ravel()) < 1e-12


@st.composite
def transposed_setups(draw):
    """A valid transposed convolution with output_padding drawn freely below max(stride, dilation)."""
    nd = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 3))
    x_shape = (draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))) + tuple(
        draw(st.integers(1, 7)) for _ in range(nd))
    # 1x1 kernels, stride 1 and zero padding drawn often: the pointwise fast path's corner
    w_shape = (x_shape[1], draw(st.integers(1, 3))) + tuple(draw(st.sampled_from([1, 1, 2, 3, 4])) for _ in range(nd))
    stride = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    op = tuple(draw(st.integers(0, max(s_, d) - 1)) for s_, d in zip(stride, dil))
    pads = []
    for n, k, s_, d, o in zip(x_shape[2:], w_shape[2:], stride, dil, op):
        full = (n - 1) * s_ + d * (k - 1) + 1 + o
        if draw(st.booleans()):
            pads.append((0, 0))
            continue
        lo = draw(st.integers(0, min(3, (full - 1) // 2)))
        pads.append((lo, draw(st.integers(0, min(3, full - 1 - lo)))))
    return nd, x_shape, w_shape, stride, dil, op, pads, groups


@settings(max_examples=200)
@given(transposed_setups(), st.sampled_from(["direct", "im2col", "fft", "auto"]))
def test_transposed_conv_and_its_gradients_on_random_geometries(setup, algo):
    """Forward against the float64 oracle; the input gradient is the forward convolution of
    grad_output (its last rows cut where output_padding >= stride made the output longer than a
    forward convolution maps back); the weight gradient by the adjoint identity."""
    nd, x_shape, w_shape, stride, dil, op, pads, groups = setup
    rng = np.random.default_rng(5)
    x, w, dw = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape)
    one = (lambda t: t) if nd == 2 else (lambda t: t[0])
    kw = dict(stride=one(stride), padding=pads if nd == 2 else [pads[0]], output_padding=one(op),
              groups=groups, dilation=one(dil), algo=algo)
    tconv, T = (fastconv.conv_transpose2d, "conv_transpose2d") if nd == 2 else (fastconv.conv_transpose1d,
                                                                                  "conv_transpose1d")
    y = tconv(x, w, **kw)
    ref = ref_conv_transpose(x, w, stride, pads, op, dil, groups)
    assert y.shape == ref.shape
    assert rel_err(y, ref) < 1e-10
    gy = rng.standard_normal(y.shape)
    gx = getattr(grad, T + "_input")(x.shape, w, gy, **kw)
    gx_ref = ref_conv(gy, w, stride, pads, dil, groups)[(slice(None), slice(None)) + tuple(
        slice(0, n) for n in x_shape[2:])]
    assert gx.shape == x.shape and rel_err(gx, gx_ref) < 1e-10
    gw = getattr(grad, T + "_weight")(x, w.shape, gy, **kw)
    lhs, rhs = np.vdot(gw, dw), np.vdot(gy, ref_conv_transpose(x, dw, stride, pads, op, dil, groups))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(rhs)) * np.sqrt(gy.size)


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(-2, 14), st.integers(-2, 14),
       st.integers(0, 5), st.integers(-1, 3), st.integers(-1, 4), st.integers(-2, 4), st.integers(0, 3),
       st.sampled_from(["direct", "im2col", "fft", "auto", "bogus"]),
       st.sampled_from([np.float32, np.float64, np.int64, np.float16]))
def test_bad_input_raises_and_never_crashes(n, cin, cout, h, w_, k, stride, dil, pad, groups, algo, dtype):
    """Random (often invalid) arguments either work and agree with the reference, or raise."""
    try:
        x = np.ones((n, cin, h, w_), dtype)
        wt = np.ones((cout, max(cin // max(groups, 1), 0), k, k), dtype)
    except ValueError:
        return
    try:
        y = fastconv.conv2d(x, wt, stride=stride, dilation=dil, padding=pad, groups=groups, algo=algo)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    assert np.isfinite(y).all()
    C = fastconv.conv_matrix(wt.astype(np.float64), x.shape, stride=stride, dilation=dil, padding=pad, groups=groups)
    assert rel_err(y.ravel(), C @ x.astype(np.float64).ravel()) < 1e-5


@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(-1, 7), st.integers(-1, 7),
       st.integers(0, 4), st.integers(-1, 3), st.integers(-1, 3), st.integers(-2, 3), st.integers(-1, 3),
       st.integers(0, 3), st.sampled_from(["direct", "im2col", "fft", "auto"]))
def test_bad_transposed_input_raises_and_never_crashes(n, cin, cout_g, h, w_, k, stride, dil, pad, out_pad, groups,
                                                       algo):
    """Random transposed-convolution arguments either raise or match the float64 scatter reference."""
    try:
        x = np.ones((n, cin, h, w_))
        wt = np.ones((cin, cout_g, k, k))
    except ValueError:
        return
    kw = dict(stride=stride, padding=pad, output_padding=out_pad, groups=groups, dilation=dil)
    try:
        y = fastconv.conv_transpose2d(x, wt, algo=algo, **kw)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    assert np.isfinite(y).all()
    ref = ref_conv_transpose(x, wt, (stride, stride), [(pad, pad)] * 2, (out_pad, out_pad), (dil, dil), groups)
    assert y.shape == ref.shape and rel_err(y, ref) < 1e-12
