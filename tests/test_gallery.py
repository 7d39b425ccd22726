"""`fastconv demo`: the registry, a quick run into a temporary folder, and index.html."""
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
