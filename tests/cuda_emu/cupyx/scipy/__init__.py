"""``cupyx.scipy`` of the CuPy stand-in (only :mod:`cupyx.scipy.sparse`)."""
