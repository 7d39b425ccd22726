"""Random differentiable transforms: the warp against SciPy, its adjoint and central differences, each transform."""
import numpy as np
import pytest
import scipy.ndimage as ndi

from fastconv.autograd import Tensor, gradcheck
from fastconv.interpret import transforms as T


def ndimage_warp(img, a, mode):
    """scipy.ndimage's bilinear affine_transform for our (x, y) matrix: it works in (row, col)."""
    m = np.array([[a[1, 1], a[1, 0]], [a[0, 1], a[0, 0]]])
    return ndi.affine_transform(img, m, offset=(a[1, 2], a[0, 2]), order=1, mode=mode, cval=0.0)


@pytest.mark.parametrize("padding_mode,scipy_mode", [("zeros", "grid-constant"), ("border", "nearest")])
@pytest.mark.parametrize("angle,scale,shift", [(0, 1, (0, 0)), (17, 1.2, (1.3, -0.7)), (-40, 0.8, (2.5, 0.25))])
def test_warp_matches_scipy_ndimage(rng, padding_mode, scipy_mode, angle, scale, shift):
    img = rng.random((2, 3, 9, 11))
    a = T.affine_matrix((9, 11), angle, scale, shift)
    got = T.affine_warp(Tensor(img), a, padding_mode).data
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(got[n, c], ndimage_warp(img[n, c], a, scipy_mode), atol=1e-12)


def test_warp_rotation_by_90_degrees_is_rot90_counter_clockwise(rng):
    img = rng.random((1, 2, 7, 7))
    got = T.affine_warp(Tensor(img), T.affine_matrix((7, 7), angle=90)).data
    np.testing.assert_allclose(got, np.rot90(img, 1, axes=(2, 3)), atol=1e-12)


def test_warp_identity_and_integer_shift_are_exact(rng):
    img = rng.random((1, 1, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(T.affine_warp(Tensor(img), T.affine_matrix((5, 6))).data, img)
    shifted = T.affine_warp(Tensor(img), T.affine_matrix((5, 6), translate=(2, 1))).data
    np.testing.assert_array_equal(shifted[0, 0, 1:, 2:], img[0, 0, :-1, :-2])
    np.testing.assert_array_equal(shifted[0, 0, 0], 0)
    assert shifted.dtype == np.float32


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_warp_adjoint_identity(rng, padding_mode):
    x = Tensor(rng.standard_normal((3, 2, 8, 10)), requires_grad=True)
    mats = np.stack([T.affine_matrix((8, 10), a, s, t) for a, s, t in
                     [(10, 1.1, (0.5, -1)), (-33, 0.7, (2, 3)), (5, 1.0, (-0.25, 0.75))]])
    y = T.affine_warp(x, mats, padding_mode, out_size=(7, 9))
    v = rng.standard_normal(y.shape)
    y.backward(v)
    lhs, rhs = float((y.data * v).sum()), float((x.data * x.grad).sum())
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_warp_gradient_by_central_differences(rng):
    x = Tensor(rng.standard_normal((2, 2, 6, 7)), requires_grad=True)
    a = T.affine_matrix((6, 7), 23, 1.15, (0.4, -0.9))
    assert gradcheck(lambda t: T.affine_warp(t, a, "zeros"), [x], n_directions=4)
    assert gradcheck(lambda t: T.affine_warp(t, a, "border"), [x], n_directions=4)


def test_composed_transform_is_differentiable(rng):
    t = T.compose(T.pad(2, "reflect"), T.jitter(2), T.random_rotate(20), T.random_scale(interval=(0.8, 1.2)),
                  T.translate(1.5), T.brightness(0.3), T.gaussian_noise(0.1), T.pad(1, "constant", 0.5))
    x = Tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    # the same seed every call: the random parameters are fixed, the function of x is smooth
    assert gradcheck(lambda v: t(v, np.random.default_rng(5)), [x], n_directions=3)


def test_same_seed_same_draws_and_items_draw_independently(rng):
    t = T.compose(T.random_affine(15, (0.9, 1.1), 2), T.brightness(10), T.gaussian_noise(1))
    x = np.repeat(rng.random((1, 3, 12, 12)) * 255, 4, axis=0)
    a = t(Tensor(x), np.random.default_rng(0)).data
    b = t(Tensor(x), 0).data
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])
    assert not np.allclose(a, t(Tensor(x), 1).data)


def test_transform_shapes_and_values(rng):
    x = Tensor(rng.random((2, 3, 10, 10)))
    assert T.jitter(4)(x, 0).shape == (2, 3, 6, 6)
    assert T.pad(3)(x, 0).shape == (2, 3, 16, 16)
    np.testing.assert_allclose(T.pad(2, "reflect")(x, 0).data, np.pad(x.data, [(0, 0), (0, 0), (2, 2), (2, 2)],
                                                                    mode="reflect"))
    padded = T.pad(1, "constant", 0.25)(x, 0).data
    assert (padded[:, :, 0] == 0.25).all() and (padded[:, :, :, -1] == 0.25).all()
    np.testing.assert_array_equal(padded[:, :, 1:-1, 1:-1], x.data)
    d = T.brightness(0.5)(x, 0).data - x.data
    assert np.allclose(d, d[:, :1, :1, :1]) and (np.abs(d) <= 0.5).all() and not np.allclose(d[0], d[1])
    noise = T.gaussian_noise(2.0)(Tensor(np.zeros((4, 3, 32, 32))), 0).data
    assert abs(noise.std() - 2.0) < 0.1
    for t in (T.random_rotate(0), T.translate(0), T.random_scale([1.0]), T.random_affine(0, (1, 1), 0)):
        np.testing.assert_allclose(t(x, 0).data, x.data, atol=1e-12)
    c = T.clip(0.2, 0.8)(x, 0).data
    assert c.min() >= 0.2 and c.max() <= 0.8
    j = T.jitter(3)(Tensor(np.arange(100.0).reshape(1, 1, 10, 10)), 0).data[0, 0]
    oy, ox = divmod(int(j[0, 0]), 10)  # a crop: contiguous rows and columns of the input
    np.testing.assert_array_equal(j, np.arange(100.0).reshape(10, 10)[oy:oy + 7, ox:ox + 7])


def test_reprs():
    t = T.compose(T.pad(4, "constant", 127.5), T.jitter(8), T.random_scale([0.9, 1.0, 1.1]), T.random_rotate(15),
                  T.translate(10), T.random_affine(15, (0.9, 1.1), 10, padding_mode="zeros"), T.brightness(20),
                  T.gaussian_noise(5), T.clip(0, 255))
    assert repr(t) == ("compose(pad(4, mode='constant', value=127.5), jitter(8), random_scale([0.9, 1, 1.1]), "
                       "random_rotate(15), translate(10), random_affine(15, (0.9, 1.1), 10, padding_mode='zeros'), "
                       "brightness(20), gaussian_noise(5), clip(0, 255))")
    assert repr(T.random_scale(interval=(0.9, 1.1))) == "random_scale(interval=(0.9, 1.1))"


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one of scales"):
        T.random_scale()
    with pytest.raises(ValueError, match="padding_mode"):
        T.random_rotate(5, padding_mode="wrap")
    with pytest.raises(ValueError, match="pad mode"):
        T.pad(2, "circle")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        T.jitter(2)(Tensor(np.zeros((3, 8, 8))), 0)
    with pytest.raises(ValueError, match=r"matrix must be \(2, 3\) or \(2, 2, 3\)"):
        T.affine_warp(Tensor(np.zeros((2, 1, 4, 4))), np.eye(3))
    with pytest.raises(TypeError, match="rng must be"):
        T.brightness(1)(Tensor(np.zeros((1, 1, 2, 2))), "seed")
    with pytest.raises(ValueError, match="would crop"):
        T.jitter(4)(Tensor(np.zeros((1, 1, 4, 4))), 0)
