"""Image helpers: uint8 conversion, map normalization, colormaps, overlays, grids, PNG round trips."""
import numpy as np
import pytest

from fastconv import io
from fastconv.autograd import Tensor


def test_to_uint8_units_and_layouts():
    chw = np.stack([np.full((2, 5), v, np.float32) for v in (0.0, 127.6, 300.0)])
    out = io.to_uint8(chw)                              # (3, H, W) pixels -> (H, W, 3), clipped, rounded
    assert out.shape == (2, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [0, 128, 255])
    np.testing.assert_array_equal(io.to_uint8(np.full((4, 4), 0.5), bounds=(0, 1)), 128)
    np.testing.assert_array_equal(io.to_uint8(np.array([[-2.0, 2.0]]), bounds=None), [[0, 255]])
    hwc = np.zeros((4, 6, 3), np.float32)
    assert io.to_uint8(hwc).shape == (4, 6, 3)
    assert io.to_uint8(Tensor(np.zeros((1, 4, 6), np.float32))).shape == (4, 6)
    assert io.to_uint8(np.zeros((3, 3, 3)), channels_first=True).shape == (3, 3, 3)
    with pytest.raises(ValueError, match="expected an image"):
        io.to_uint8(np.zeros((1, 2, 3, 4)))


def test_normalize_map_saturates_at_the_percentile():
    m = np.arange(100.0).reshape(10, 10)
    m[0, 0] = -1e6                                      # one extreme (negative) outlier
    out = io.normalize_map(m, percentile=99)
    assert out.dtype == np.uint8 and out[0, 0] == 255
    assert out[5, 5] == round(55 / np.percentile(np.abs(m), 99) * 255)
    np.testing.assert_array_equal(io.normalize_map(np.zeros((3, 3))), 0)
    assert io.normalize_map(np.ones((1, 3, 3))).shape == (3, 3)
    with pytest.raises(ValueError, match="percentile"):
        io.normalize_map(m, percentile=0)


def test_colormap_lookup_tables():
    for lut in io.COLORMAPS.values():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    np.testing.assert_array_equal(io.COLORMAPS["gray"][:, 0], np.arange(256))
    mpl = pytest.importorskip("matplotlib")
    for name in ("inferno", "viridis"):
        ref = mpl.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255
        assert np.abs(io.COLORMAPS[name].astype(float) - ref).max() <= 5
    with pytest.raises(ValueError, match="unknown cmap"):
        io.colormap(np.zeros((2, 2)), "jet")


def test_overlay_blends_and_resizes():
    photo = np.full((8, 8, 3), 200, np.uint8)
    m = np.zeros((8, 8))
    m[2, 3] = 1.0
    np.testing.assert_array_equal(io.overlay(photo, m, alpha=0.0), photo)
    full = io.overlay(photo, m, alpha=1.0)
    np.testing.assert_array_equal(full[2, 3], io.COLORMAPS["inferno"][255])
    np.testing.assert_array_equal(full[0, 0], io.COLORMAPS["inferno"][0])
    half = io.overlay(photo, m, alpha=0.5)
    np.testing.assert_array_equal(half[0, 0], np.rint(0.5 * 200 + 0.5 * io.COLORMAPS["inferno"][0].astype(float)))
    low = io.overlay(photo, np.ones((2, 2)), alpha=1.0)        # a low-resolution map is resized
    assert low.shape == (8, 8, 3)
    grey = io.overlay(np.zeros((5, 7), np.uint8), np.zeros((5, 7)), 0.3, cmap="viridis")
    assert grey.shape == (5, 7, 3)
    with pytest.raises(ValueError, match="alpha"):
        io.overlay(photo, m, alpha=2)


def test_image_grid_places_cells():
    a = np.zeros((4, 4), np.uint8)
    b = np.full((2, 3, 3), 100, np.uint8)
    g = io.image_grid([a, b, a], ncols=2, pad=1, bg=255)
    assert g.shape == (2 * 4 + 3, 2 * 4 + 3, 3)
    np.testing.assert_array_equal(g[1:5, 1:5], 0)                   # first cell
    np.testing.assert_array_equal(g[2:4, 6:9], 100)                 # second cell, centred in its 4 x 4 slot
    assert g[0].min() == 255 and g[-1, -5:].min() == 255            # padding and the empty fourth cell
    assert io.image_grid(np.zeros((5, 3, 3), np.uint8)).shape == (2 * 3 + 3 * 2, 3 * 3 + 4 * 2, 3)
    with pytest.raises(ValueError, match="at least one"):
        io.image_grid([])


def test_png_round_trips(tmp_path):
    rgb = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 4).astype(np.uint8)
    io.save_image(rgb, tmp_path / "sub" / "rgb.png")
    np.testing.assert_array_equal(io.load_image(tmp_path / "sub" / "rgb.png"), rgb)
    m = np.linspace(0, 1, 20).reshape(4, 5)
    io.save_png(m, tmp_path / "map.png", percentile=100)
    np.testing.assert_array_equal(io.load_image(tmp_path / "map.png", mode="L"), io.normalize_map(m, 100))
    chw = np.full((3, 4, 5), 255.0, np.float32)
    io.save_png(chw, tmp_path / "img.png", bounds=(0, 255))
    np.testing.assert_array_equal(io.load_image(tmp_path / "img.png"), 255)
    io.save_png(np.eye(3, dtype=bool), tmp_path / "mask.png")
    np.testing.assert_array_equal(io.load_image(tmp_path / "mask.png", "L"), np.eye(3) * 255)
    with pytest.raises(ValueError, match="uint8"):
        io.save_image(rgb.astype(np.float32), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="mode"):
        io.load_image(tmp_path / "rgb.png", mode="CMYK")
