#!/usr/bin/env python
"""Side-by-side benchmark report: fastconv vs PyTorch, SciPy and NumPy im2col.

    python bench/run.py --quick --plot bench/out          # about 3-5 minutes on 2 cores
    python bench/run.py --json bench/out/full.json --plot bench/out --out bench/out/report.md

The same as ``fastconv bench``; see ``fastconv/bench/`` and ``bench/NOTES.md``.
"""
import sys

from fastconv.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
