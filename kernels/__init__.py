"""fastconv.kernels: the compute, nothing else.

``cpu/`` holds Numba ``@njit`` kernels, ``cuda/`` CUDA C++ sources loaded by CuPy. Kernels take
contiguous arrays and plain ints, allocate nothing the caller did not ask for and validate
nothing: fastconv.functional has checked every argument before a kernel runs.
This package imports nothing of fastconv.
"""
