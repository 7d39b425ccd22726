"""``cupy.cuda.runtime`` of the stand-in: one emulated device, id 0."""
from __future__ import annotations

#: What getDeviceProperties reports (a Hopper-class part, as the kernels are tuned for sm_90).
_PROPERTIES = {"name": b"fastconv CUDA emulator (CPU)", "major": 9, "minor": 0,
               "totalGlobalMem": 1 << 34, "multiProcessorCount": 1, "warpSize": 32,
               "maxThreadsPerBlock": 1024, "sharedMemPerBlock": 48 * 1024, "regsPerBlock": 65536}


class CUDARuntimeError(RuntimeError):
    """CuPy's error for a failed CUDA runtime call."""


def _check(device: int) -> int:
    if device != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return device


def getDeviceCount() -> int:
    return 1


def getDevice() -> int:
    return 0


def setDevice(device: int) -> None:
    _check(device)


def deviceSynchronize() -> None:
    """Every emulated launch has finished when it returns: nothing to wait for."""


def getDeviceProperties(device: int) -> dict:
    _check(device)
    return dict(_PROPERTIES)


def runtimeGetVersion() -> int:
    return 12000


def driverGetVersion() -> int:
    return 12000
