"""The part of ``cupyx`` fastconv uses, for the CuPy stand-in: ``cupyx.scipy.sparse.csr_matrix``."""
