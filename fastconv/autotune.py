"""Autotuning for ``algo='auto'``: time every algorithm once per problem and keep the fastest.

fastconv's counterpart of cuDNN's benchmark mode (``torch.backends.cudnn.benchmark``). It is
off by default: ``auto`` then follows each backend's rule (``choose_algo``), which was fitted
on one machine. Turned on, the first call of each operation on a new problem runs every
algorithm that covers it, times them, and remembers the winner for the rest of the process.
A problem is the operation ('forward', 'grad_input' or 'grad_weight'), the geometry, the dtype,
the backend and its context (CPU threads, or GPU device). Only ``algo='auto'`` is tuned; an
algorithm asked for by name runs as asked.

Each candidate runs once untimed (compilation, caches), then up to ``REPEATS`` timed calls, of
which the fastest counts; a candidate whose first timed call takes ``GIVE_UP`` times the best
time so far is not repeated (a direct kernel on a large layer costs a good part of a second).

Example:
    >>> import numpy as np, fastconv
    >>> x = np.random.rand(1, 8, 32, 32).astype(np.float32)
    >>> w = np.random.rand(8, 8, 9, 9).astype(np.float32)
    >>> with fastconv.autotune.enabled():
    ...     y = fastconv.conv2d(x, w, padding='same')        # times direct, im2col and fft
    >>> [(k.op, c.algo) for k, c in fastconv.autotune.choices().items()]   # doctest: +SKIP
    [('forward', 'fft')]
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from fastconv.geometry import ConvGeometry

REPEATS = 3
GIVE_UP = 20.0

_on = False
_choices: dict = {}


@dataclass(frozen=True)
class Problem:
    """What a tuned choice is remembered for."""
    backend: str
    context: tuple
    op: str
    geom: ConvGeometry
    dtype: str


@dataclass
class Choice:
    """The winner and every candidate's best time in seconds."""
    algo: str
    times: dict = field(default_factory=dict)


def enable(on: bool = True) -> None:
    """Turn autotuning of ``algo='auto'`` on (or off) for the whole process."""
    global _on
    _on = bool(on)


def is_enabled() -> bool:
    return _on


@contextlib.contextmanager
def enabled(on: bool = True):
    """Autotune inside a ``with`` block; the previous setting comes back after it."""
    before = _on
    enable(on)
    try:
        yield
    finally:
        enable(before)


def choices() -> dict:
    """A copy of what has been tuned so far: {Problem: Choice}."""
    return dict(_choices)


def clear() -> None:
    """Forget every tuned choice (the next call of each problem times its candidates again)."""
    _choices.clear()


def pick(backend, op: str, geom: ConvGeometry, dtype, run) -> str:
    """The algorithm for ``op`` on ``geom``: the backend's rule, or (autotuning) the fastest.

    ``run(algo)`` computes the operation with ``algo``; its result is discarded.
    """
    if not _on:
        return backend.choose_algo(geom, op)
    key = Problem(backend.name, backend.timing_context(), op, geom, str(dtype))
    choice = _choices.get(key)
    if choice is None:
        choice = _choices[key] = _time_candidates(backend, backend.algos_for(geom, op), run)
    return choice.algo


def _time_candidates(backend, algos, run) -> Choice:
    times, best = {}, float("inf")
    for algo in algos:
        run(algo)                                # untimed: compilation, caches, first touch
        backend.synchronize()
        for i in range(REPEATS):
            t0 = time.perf_counter()
            run(algo)
            backend.synchronize()
            times[algo] = min(times.get(algo, float("inf")), time.perf_counter() - t0)
            if times[algo] > GIVE_UP * best:     # hopeless: not worth the remaining repeats
                break
        best = min(best, times[algo])
    return Choice(min(times, key=times.get), times)
