"""CUDA C++ sources (``*.cu``), shipped as package data and compiled lazily by CuPy."""
