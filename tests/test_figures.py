"""The course's pictures: overlap maps, conv-as-matrix, 1-D smoothing, checkerboards, receptive fields."""
import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv.interpret import figures as FG
from fastconv.models.digits import digits_cnn


def test_overlap_map_kernel3_stride2_is_a_checkerboard():
    one = FG.overlap_map(3, 2, 6, dims=1)
    assert one.shape == ((6 - 1) * 2 + 3,)
    assert set(one[1:-1].tolist()) == {1, 2} and one.tolist()[:5] == [1, 1, 2, 1, 2]
    two = FG.overlap_map(3, 2, 6)
    assert set(two[1:-1, 1:-1].ravel().tolist()) == {1, 2, 4}
    np.testing.assert_array_equal(two, np.outer(one, one))  # separable: the 2-D count is the product


def test_overlap_map_kernel4_stride2_is_uniform_inside():
    one = FG.overlap_map(4, 2, 6, dims=1)
    assert set(one[2:-2].tolist()) == {2}
    two = FG.overlap_map(4, 2, 6)
    assert set(two[2:-2, 2:-2].ravel().tolist()) == {4}
    assert two.sum() == 6 * 6 * 16  # every input pixel paints one whole 4x4 kernel
    with pytest.raises(ValueError):
        FG.overlap_map(3, 2, 4, dims=3)


def test_strided_conv_gradient_carries_the_overlap_pattern():
    g = FG.strided_conv_gradient(3, 2, size=16, channels=2)
    inner = np.rint(g[2:-2, 2:-2] / 2).astype(int)
    assert set(inner.ravel().tolist()) == {1, 2, 4}
    g4 = FG.strided_conv_gradient(4, 2, size=16, channels=2)
    assert np.ptp(g4[3:-3, 3:-3]) == 0
    pe = FG.phase_energy(g)
    assert pe.max() > 1.5 * pe.min()


def test_checkerboard_generated_transposed_vs_resize_conv():
    imgs = FG.checkerboard_generated(size=32, channels=4, layers=2, constant_input=True)
    inner = {k: v[4:-4, 4:-4] for k, v in imgs.items()}
    assert np.ptp(inner["resize-conv"]) < 1e-5          # constant in, constant out (away from borders)
    tc = inner["transposed k3 s2"]
    assert np.ptp(tc) > 1e-3                             # the checkerboard
    np.testing.assert_allclose(tc[:-4], tc[4:], atol=1e-5)  # ... periodic with period 4 = 2 x 2 layers
    with pytest.raises(ValueError):
        FG.checkerboard_generated(size=30, layers=2)


def test_conv_matrix_example_uses_conv_matrix_and_transpose_is_conv_transpose():
    ex = FG.conv_matrix_example()
    C = ex["C"]
    assert C.shape == (4, 16) and np.count_nonzero(C) == 36
    np.testing.assert_array_equal(C, fastconv.conv_matrix(np.arange(1, 10.0).reshape(1, 1, 3, 3), (1, 4, 4)).toarray())
    np.testing.assert_allclose(ex["y_matrix"], ex["y_conv"], atol=1e-12)
    np.testing.assert_allclose(ex["CTv"], ex["conv_transpose"], atol=1e-12)
    # the lecture's first row: k00 k01 k02 0 k10 k11 k12 0 k20 k21 k22 0 0 0 0 0
    assert ex["labels"][0].tolist() == ["k00", "k01", "k02", "0", "k10", "k11", "k12", "0",
                                        "k20", "k21", "k22", "0", "0", "0", "0", "0"]
    ex = FG.conv_matrix_example(kernel=np.full((3, 3), 0.5))
    assert set(np.unique(ex["C"]).tolist()) == {0.0, 0.5}
    np.testing.assert_allclose(ex["CTv"], ex["conv_transpose"], atol=1e-12)


def test_conv_matrix_figure_is_an_image():
    img = FG.conv_matrix_figure()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.shape[1] > 400


def test_smoothing_1d_lengths_and_values():
    f = np.arange(10.0) ** 2
    r = FG.smoothing_1d(f)
    (pv, v), (ps, s), (p2, s2) = r["valid"], r["same"], r["stride 2"]
    assert (len(v), len(s), len(s2)) == (8, 10, 4)
    np.testing.assert_allclose(v, (f[:-2] + f[1:-1] + f[2:]) / 3)
    np.testing.assert_allclose(s[[0, -1]], [(f[0] + f[1]) / 3, (f[-2] + f[-1]) / 3])  # zero padding at the ends
    np.testing.assert_allclose(s2, v[::2])
    np.testing.assert_array_equal(pv, np.arange(1, 9))
    np.testing.assert_array_equal(p2, [1, 3, 5, 7])
    assert len(FG.smoothing_1d(n=40)["same"][1]) == 40
    img = FG.smoothing_1d_figure(n=20)
    assert img.dtype == np.uint8 and img.ndim == 3


def test_receptive_field_figure_stride_vs_no_stride():
    img = np.zeros((40, 48, 3), np.uint8)
    a = FG.receptive_field_figure(img, FG.conv_stack(3, stride=1), scale=2)
    b = FG.receptive_field_figure(img, FG.conv_stack(3, stride=2), scale=2, title="stride 2")
    assert a.shape[1] == b.shape[1] == 96 and a.shape[0] > 80 and b.shape[0] > a.shape[0]
    # the largest box of the strided stack is larger: count coloured pixels on the image part
    assert (b[20:100].sum(axis=2) > 0).sum() > (a[:80].sum(axis=2) > 0).sum()
    with pytest.raises(KeyError):
        FG.receptive_field_figure(img, FG.conv_stack(2), layers=["9"])


def test_features_only_lets_receptive_field_read_efficientnet():
    from fastconv.models.efficientnet import efficientnet_lite0
    from fastconv.receptive import receptive_field
    trunk = FG.features_only(efficientnet_lite0(pretrained=False, input="normalized"))
    fields = {f.name: f for f in receptive_field(trunk, (1, 3, 64, 64))}
    assert fields["_conv_stem"].size == (3, 3) and fields["_conv_stem"].jump == (2, 2)
    assert fields["_conv_head"].jump == (32, 32)


def test_filters_and_feature_maps_on_digits_cnn():
    nn.manual_seed(0)
    model = digits_cnn()
    grid = FG.first_layer_filters(model, scale=4, ncols=8)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[1] == 8 * 12 + 9 * 2  # 8 tiles of 3x3 scaled 4x, padding max(2, 4 // 4)
    x = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    maps = FG.feature_maps(model, x, "0", n=4, size=16, ncols=4)
    assert maps.shape == (16 + 6, 4 * 16 + 15, 3)
    assert model.training  # left as it was


def test_checkerboard_and_overlap_figures_render():
    for img in (FG.overlap_figure(), FG.checkerboard_figure()):
        assert img.dtype == np.uint8 and img.ndim == 3 and min(img.shape[:2]) > 200
