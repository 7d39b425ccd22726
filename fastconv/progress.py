"""A plain-text progress bar on stderr, for the library's long loops (no tqdm dependency)."""
from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """``[#####.....] 32/64 label text 3.2s`` on one redrawn line of stderr.

    Args:
        total: the count that means done (a newline is written when it is reached).
        label: printed after the count.
        width: characters of the bar.
        stream: where to write (default ``sys.stderr``).
        interval: seconds between redraws (the last call always draws).

    Example:
        >>> bar = ProgressBar(64, "steps")
        >>> for i in range(1, 65):
        ...     bar(i, f"loss {1 / i:.3f}")          # doctest: +SKIP
    """

    def __init__(self, total: int, label: str = "", width: int = 24, stream=None, interval: float = 0.2):
        self.total, self.label, self.width, self.interval = max(int(total), 1), label, width, interval
        self.stream = sys.stderr if stream is None else stream
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, text: str = "") -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last < self.interval:
            return
        self.last = now
        filled = int(self.width * done / self.total)
        self.stream.write(f"\r  [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                          f"{self.label} {text} {now - self.start:5.1f}s")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
