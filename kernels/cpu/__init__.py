"""Numba CPU kernels (float32 and float64 only; every kernel is compiled lazily and cached)."""
