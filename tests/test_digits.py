"""The digits CNN trained from scratch: data, accuracy bar at a reduced budget, the demo, saved weights."""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from fastconv.data import load_digits  # noqa: E402
from fastconv.models import digits  # noqa: E402

DEMO = pathlib.Path(__file__).resolve().parents[1] / "demos" / "train_digits.py"


def test_load_digits_shapes_range_and_stratified_split():
    d = load_digits()
    assert d.x_train.shape[1:] == (1, 8, 8) and d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert len(d.x_train) + len(d.x_test) == 1797
    assert 0.0 == d.x_train.min() and d.x_train.max() == 1.0
    counts_test = np.bincount(d.y_test, minlength=10)
    counts_all = counts_test + np.bincount(d.y_train, minlength=10)
    np.testing.assert_allclose(counts_test / counts_all, 0.2, atol=0.01)
    again, other = load_digits(0), load_digits(1)
    np.testing.assert_array_equal(again.y_test, d.y_test)
    assert not np.array_equal(other.x_test, d.x_test)


def test_load_digits_without_sklearn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'fastconv\[demos\]'"):
        load_digits()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo, run once at a reduced budget (8 of its 10 epochs)."""
    out = tmp_path_factory.mktemp("digits")
    spec = importlib.util.spec_from_file_location("train_digits_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    acc = demo.main(["--epochs", "8", "--out", str(out), "--quiet"])
    return acc, out


def test_digits_cnn_reaches_97_percent_held_out(demo_run):
    acc, _ = demo_run
    assert acc >= 0.97


def test_demo_writes_weights_and_loss_curve(demo_run):
    _, out = demo_run
    png = (out / "loss_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    with np.load(out / "digits_cnn.npz") as z:
        assert sorted(z.files) == ["0.bias", "0.weight", "2.bias", "2.weight", "6.bias", "6.weight"]


def test_pretrained_digits_cnn_loads_the_saved_weights(demo_run):
    acc, out = demo_run
    model = digits.pretrained_digits_cnn(out / "digits_cnn.npz")
    assert not model.training
    d = load_digits()
    assert digits.accuracy(model, d.x_test, d.y_test) == pytest.approx(acc)


def test_loss_curve_falls_back_to_pillow(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("train_digits_demo2", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    demo.plot_loss(np.geomspace(2.0, 0.01, 50), [0.9, 0.95], str(tmp_path / "c.png"))
    from PIL import Image
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == (640, 360)
        colours = np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)
        assert len(colours) > 2  # a curve was drawn, not a blank canvas
