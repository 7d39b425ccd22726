"""The ``fastconv`` command: ``fastconv bench | demo | classify | info``.

Each subcommand lives in its own module and is imported only when used, so ``fastconv info``
starts fast and ``fastconv bench`` does not need the demos' extras.
"""
from __future__ import annotations

import argparse
import sys


def _info(argv) -> int:
    """Print versions, threads and the backends that are available."""
    import platform

    import numba
    import numpy
    import scipy

    import fastconv
    from fastconv.backends import get_backend

    print(f"fastconv {fastconv.__version__}  python {platform.python_version()}  numpy {numpy.__version__}  "
          f"scipy {scipy.__version__}  numba {numba.__version__}")
    threads = numba.get_num_threads()                 # starts Numba's threads: the layer is now fixed
    layer = numba.threading_layer()
    print(f"numba threads {threads}  threading layer {layer}"
          + ("" if layer == "workqueue" else " (workqueue recommended: threads that spin slow the BLAS calls)"))
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            print(f"BLAS {pool.get('internal_api')} {pool.get('version')} threads {pool.get('num_threads')} "
                  f"({pool.get('architecture')})")
    except ImportError:
        pass
    print(f"CPU algorithms: {', '.join(get_backend(device='cpu').ALGOS)}")
    try:
        cuda = get_backend(device="cuda")
        print(f"CUDA backend: available, algorithms: {', '.join(cuda.ALGOS)}")
    except (RuntimeError, ImportError) as exc:
        print(f"CUDA backend: not available ({exc})")
    return 0


def _bench(argv) -> int:
    from fastconv import bench
    return bench.main(argv) or 0


def _demo(argv) -> int:
    from fastconv import gallery
    return gallery.main(argv) or 0


def _classify(argv) -> int:
    from fastconv.models import classify
    return classify.main(argv) or 0


COMMANDS = {
    "bench": (_bench, "side-by-side benchmark against SciPy, NumPy and PyTorch"),
    "demo": (_demo, "run the course's demos and write a picture gallery"),
    "classify": (_classify, "classify photos with the pretrained EfficientNet-Lite0"),
    "info": (_info, "versions, threads and available backends"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS),
                        help="; ".join(f"{k}: {v[1]}" for k, v in sorted(COMMANDS.items())))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    return COMMANDS[args.command][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
