"""``cupy.cuda`` of the stand-in: one device (id 0), the null stream, events timed on the host,
and a memory pool that reports the bytes the live device arrays hold.

Launches run synchronously on the host, so every ``synchronize`` returns at once and an
event's time is the host clock when it was recorded.
"""
from __future__ import annotations

import time
import weakref

import numpy as np

from cupy.cuda import runtime
from cupy.cuda.runtime import CUDARuntimeError

__all__ = ["CUDARuntimeError", "Device", "Event", "MemoryPointer", "MemoryPool", "Stream",
           "get_current_stream", "get_elapsed_time", "runtime"]


class Device:
    """A CUDA device; only id 0 exists. Usable as a context manager, as CuPy's."""

    def __init__(self, device: int | None = None):
        self.id = runtime.getDevice() if device is None else runtime._check(int(device))

    compute_capability = "90"

    @property
    def attributes(self) -> dict:
        """A few of CuPy's device attributes, under CuPy's names, of a small GPU (2 SMs, so
        that the tile rules reach their large tiles on test-sized problems)."""
        return {"MultiProcessorCount": 2, "MaxThreadsPerBlock": 1024, "WarpSize": 32}

    def use(self) -> None:
        runtime.setDevice(self.id)

    def synchronize(self) -> None:
        runtime.deviceSynchronize()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __int__(self) -> int:
        return self.id

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


class Stream:
    """A CUDA stream; work runs at launch, so streams only keep CuPy's interface."""

    null: "Stream"
    _current: "Stream"

    def __init__(self, null: bool = False, non_blocking: bool = False, ptr: int = 0):
        self.ptr = 0 if null else ptr or id(self)

    def synchronize(self) -> None:
        pass

    def use(self) -> "Stream":
        Stream._current = self
        return self

    def record(self, event: "Event | None" = None) -> "Event":
        event = Event() if event is None else event
        event.record(self)
        return event

    def __enter__(self) -> "Stream":
        self._prev, Stream._current = Stream._current, self
        return self

    def __exit__(self, *exc) -> None:
        Stream._current = self._prev

    def __repr__(self) -> str:
        return f"<Stream {self.ptr}>"


Stream.null = Stream._current = Stream(null=True)


def get_current_stream() -> Stream:
    return Stream._current


class Event:
    """A CUDA event: ``record`` notes the host clock."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False):
        self._time: float | None = None
        self._timing = not disable_timing

    def record(self, stream: Stream | None = None) -> None:
        self._time = time.perf_counter()

    def synchronize(self) -> None:
        pass

    @property
    def done(self) -> bool:
        return True


def get_elapsed_time(start: Event, end: Event) -> float:
    """Milliseconds between two recorded events."""
    if start._time is None or end._time is None or not (start._timing and end._timing):
        raise CUDARuntimeError("cudaErrorInvalidResourceHandle: invalid resource handle")
    return (end._time - start._time) * 1e3


class MemoryPointer:
    """A device address (``ptr``): here the address of the host buffer the kernels use."""

    def __init__(self, ptr: int, device_id: int = 0):
        self.ptr, self.device_id = ptr, device_id

    def __int__(self) -> int:
        return self.ptr

    def __repr__(self) -> str:
        return f"<MemoryPointer 0x{self.ptr:x} device={self.device_id}>"


#: The host buffers behind live device arrays (id -> buffer; an entry goes with its buffer).
_buffers: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


def track(host: np.ndarray) -> None:
    """Count the buffer that ``host`` (an array or a view) lives in as device memory."""
    while isinstance(host.base, np.ndarray):
        host = host.base
    _buffers[id(host)] = host


class MemoryPool:
    """CuPy's device memory pool: ``used_bytes`` counts the buffers of live device arrays;
    nothing is cached, so there are no free blocks to release."""

    def used_bytes(self) -> int:
        return sum(b.nbytes for b in list(_buffers.values()))

    def total_bytes(self) -> int:
        return self.used_bytes()

    def free_bytes(self) -> int:
        return 0

    def n_free_blocks(self) -> int:
        return 0

    def free_all_blocks(self, stream: Stream | None = None) -> None:
        pass
