"""``python -m fastconv.bench``: the same as ``fastconv bench``."""
import sys

from fastconv.bench import main

if __name__ == "__main__":
    sys.exit(main())
