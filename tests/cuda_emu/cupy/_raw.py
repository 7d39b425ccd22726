"""``RawModule`` of the CuPy stand-in: fastconv's CUDA sources compiled by g++ and run on the CPU.

The source string (what fastconv hands to NVRTC) is compiled as C++17 with
``tests/cuda_emu/emu_runtime.h`` force-included, plus, per name expression, two C entry points:
``fcemu_sig_<i>`` (the kernel's parameter types, read from the instantiation itself) and
``fcemu_launch_<i>`` (grid, block and a ``void*`` per argument). A launch checks every argument
against the parameter it lands in before anything runs: an array for a pointer with the
pointee's dtype and C-contiguous, a NumPy scalar of the parameter's exact width for a value.
On a GPU a mismatch there reads garbage; here it is an error that names the argument.

Built libraries are cached by a hash of everything that goes into them, under
``$FASTCONV_EMU_CACHE`` (default ``~/.cache/fastconv-cuda-emu``).
``FASTCONV_EMU_SANITIZE=address`` builds with AddressSanitizer (run Python with libasan in
``LD_PRELOAD``): an out-of-bounds read or write in a kernel then stops the process with a report.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RUNTIME = Path(__file__).resolve().parent.parent / "emu_runtime.h"
CXX = os.environ.get("CXX", "g++")

#: parameter code (emu_runtime.h, type_code) -> (what it is, NumPy dtype)
_POINTEE = {"F": np.float32, "D": np.float64, "I": np.int32, "4": np.int32}
_VALUE = {"i": (np.int32, ctypes.c_int32), "l": (np.int64, ctypes.c_int64), "f": (np.float32, ctypes.c_float),
          "d": (np.float64, ctypes.c_double), "b": (np.bool_, ctypes.c_bool)}


class CompileException(RuntimeError):
    """The source did not compile (g++'s messages follow)."""


def _cache_dir() -> Path:
    d = Path(os.environ.get("FASTCONV_EMU_CACHE", Path.home() / ".cache" / "fastconv-cuda-emu"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _flags() -> list[str]:
    # -U_FORTIFY_SOURCE: a fortified longjmp refuses to jump between stacks (the fibers' switch)
    flags = ["-std=c++17", "-O2", "-U_FORTIFY_SOURCE", "-fPIC", "-shared", "-w", "-include", str(RUNTIME)]
    if os.environ.get("FASTCONV_EMU_SANITIZE") == "address":
        flags += ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]
    return flags


def _defines(options) -> list[str]:
    """NVRTC options that mean something on the host: -D and -U; the rest are device settings."""
    return [o for o in options if re.match(r"^-[DU]", o)]


def _build(code: str, options, exprs) -> ctypes.CDLL:
    entries = "\n".join(
        f'extern "C" const char* fcemu_sig_{i}() {{ return fcemu::signature(&{e}); }}\n'
        f'extern "C" int fcemu_launch_{i}(const unsigned* d, void** a) {{ return fcemu::launch(&{e}, d, a); }}'
        for i, e in enumerate(exprs))
    source = (f"{code}\n\n// ---- emulator entry points\n{entries}\n"
              'extern "C" const char* fcemu_error() { return fcemu::last_error.c_str(); }\n')
    flags = _flags() + _defines(options)
    key = hashlib.sha256("\0".join([source, RUNTIME.read_text(), CXX, *flags]).encode()).hexdigest()[:24]
    lib = _cache_dir() / f"{key}.so"
    if not lib.exists():
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "module.cpp"
            src.write_text(source)
            out = Path(tmp) / "module.so"
            proc = subprocess.run([CXX, *flags, str(src), "-o", str(out)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise CompileException(f"{CXX} failed on the CUDA source:\n{proc.stderr[-6000:]}")
            os.replace(out, lib)  # atomic: a concurrent build of the same key is harmless
    return ctypes.CDLL(str(lib))


class RawModule:
    """Compiles ``code`` for the host; kernels are fetched by their name expression."""

    def __init__(self, code: str, options=(), name_expressions=(), **_):
        if not name_expressions:
            raise ValueError("the emulator needs name_expressions (it instantiates those templates)")
        self.name_expressions = tuple(name_expressions)
        self._lib = _build(code, options, self.name_expressions)
        self._lib.fcemu_error.restype = ctypes.c_char_p

    def get_function(self, name: str) -> "RawKernel":
        try:
            i = self.name_expressions.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not one of the module's name expressions "
                           f"{self.name_expressions}") from None
        return RawKernel(self._lib, i, name)


class RawKernel:
    """One kernel; call it as CuPy's: ``kernel(grid, block, args)``."""

    def __init__(self, lib: ctypes.CDLL, index: int, name: str):
        self.name = name
        sig = getattr(lib, f"fcemu_sig_{index}")
        sig.restype = ctypes.c_char_p
        self.signature = sig().decode()
        self._launch = getattr(lib, f"fcemu_launch_{index}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_void_p)]
        self._error = lib.fcemu_error

    def __call__(self, grid, block, args, shared_mem: int = 0, stream=None):
        grid, block = _dims(grid, "grid"), _dims(block, "block")
        if shared_mem:
            raise NotImplementedError("dynamic shared memory is not emulated (fastconv uses none)")
        args = tuple(args)
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name} takes {len(self.signature)} arguments, got {len(args)}")
        slots = [self._marshal(i, code, a) for i, (code, a) in enumerate(zip(self.signature, args))]
        ptrs = (ctypes.c_void_p * max(len(slots), 1))(*[ctypes.cast(ctypes.pointer(s), ctypes.c_void_p)
                                                         for s in slots])
        dims = (ctypes.c_uint * 6)(*grid, *block)
        if self._launch(dims, ptrs) != 0:
            raise RuntimeError(f"{self.name}: {self._error().decode()}")

    def _marshal(self, i: int, code: str, a):
        where = f"{self.name} argument {i}"
        if code in _POINTEE:
            host = getattr(a, "_host", None)
            if host is None:
                raise TypeError(f"{where} is a pointer: expected a cupy.ndarray, got {type(a).__name__}")
            if host.dtype != _POINTEE[code]:
                raise TypeError(f"{where} points to {np.dtype(_POINTEE[code]).name}, got a {host.dtype} array")
            if not host.flags.c_contiguous:
                raise ValueError(f"{where}: the kernel indexes a C-contiguous array, got strides "
                                 f"{host.strides} for shape {host.shape}")
            if code == "4" and host.size % 4:
                raise ValueError(f"{where} is an int4 table: its size {host.size} is not a multiple of 4")
            return ctypes.c_void_p(host.__array_interface__["data"][0])
        if code in _VALUE:
            dtype, ctype = _VALUE[code]
            if not isinstance(a, np.generic) or a.dtype != dtype:
                raise TypeError(f"{where} is a {np.dtype(dtype).name} parameter: pass "
                                f"np.{np.dtype(dtype).name}(...), got {type(a).__name__} {a!r}")
            return ctype(a.item())
        raise TypeError(f"{where}: the emulator cannot pass a parameter of kind {code!r}")


def _dims(d, what: str) -> tuple[int, int, int]:
    d = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    if not 1 <= len(d) <= 3 or any(not isinstance(v, (int, np.integer)) or v < 0 for v in d):
        raise ValueError(f"{what} must be 1 to 3 non-negative ints, got {d}")
    return tuple(int(v) for v in d) + (1,) * (3 - len(d))

