#!/usr/bin/env bash
# One-shot GPU check for a lent GPU machine (no internet needed):
#   1. make this checkout importable by whatever python is there (editable install without
#      dependencies or build isolation; failing that, a private copy on PYTHONPATH),
#   2. compile-check + GPU tests:  pytest tests/test_cuda_compile.py tests/test_gpu.py
#   3. GPU benchmark vs cuDNN:      python bench/gpu_bench.py  -> bench/RESULTS-gpu.md
#   4. the demos on the GPU:        fastconv demo all --quick --device cuda (needs the demos extra:
#      the Lite0 weights package and Pillow; skipped with a note when they are missing)
# Everything is logged to bench/gpu_check.log; the test summary is appended to the results.
# --noconftest: these two files need none of tests/conftest.py (hypothesis, CPU kernel warm-up),
# so a GPU machine without hypothesis still runs them and no float32 CPU kernel is compiled.
# Whole run budget: under 8 minutes (tests capped at 200 s, benchmark at 180 s, new cases stop after
# 130 s, demos at 90 s).
# Usage: bash bench/gpu_check.sh            (PYTHON=/path/to/python to choose the interpreter)
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
PY="${PYTHON:-$(command -v python3 || command -v python)}"
LOG="$REPO/bench/gpu_check.log"
RESULTS="$REPO/bench/RESULTS-gpu.md"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/nbcache}"
export CUPY_TF32=0
# fastconv sets this itself when numba loads; set here, `import fastconv` needs no numba (GPU-only runs)
export NUMBA_THREADING_LAYER="${NUMBA_THREADING_LAYER:-workqueue}"
: > "$LOG"
say() { echo "[gpu_check] $*" | tee -a "$LOG"; }

say "python: $PY ($("$PY" --version 2>&1))"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$LOG"
for mod in numpy numba scipy cupy torch pytest; do
    "$PY" -c "import $mod; print('$mod', getattr($mod, '__version__', '?'))" >>"$LOG" 2>&1 || say "missing module: $mod"
done

# ---- 1. import this checkout (fastconv.kernels is kernels/, mapped by pyproject.toml)
importable() {
    (cd /tmp && "$PY" - "$REPO" <<'PYEOF'
import os, sys
import fastconv.kernels.cuda as k, fastconv.backends._cuda_src  # noqa: F401
sys.exit(0 if os.path.realpath(k.__file__).startswith(os.path.realpath(sys.argv[1])) else 1)
PYEOF
    ) >>"$LOG" 2>&1
}
RUN_DIR="$REPO"
if ! importable; then
    say "installing the checkout: pip install --no-deps --no-build-isolation --no-index -e ."
    "$PY" -m pip install --no-deps --no-build-isolation --no-index -e "$REPO" >>"$LOG" 2>&1 || say "pip install failed"
fi
if ! importable; then
    SHADOW="$(mktemp -d /tmp/fastconv_src.XXXXXX)"
    cp -r "$REPO/fastconv" "$SHADOW/fastconv" && rm -rf "$SHADOW/fastconv/kernels" && cp -r "$REPO/kernels" "$SHADOW/fastconv/kernels"
    export PYTHONPATH="$SHADOW${PYTHONPATH:+:$PYTHONPATH}"
    RUN_DIR="$SHADOW"   # so that the checkout's own fastconv/ (without kernels/) does not shadow the copy
    say "using a private copy on PYTHONPATH: $SHADOW"
fi

# ---- 2. tests (compile check + GPU correctness)
say "running tests"
TEST_OUT="$(mktemp)"
(cd "$RUN_DIR" && timeout 200 "$PY" -m pytest -q -p no:cacheprovider -rs --maxfail=25 --noconftest --rootdir="$REPO" \
    "$REPO/tests/test_cuda_compile.py" "$REPO/tests/test_gpu.py" 2>&1) | tee "$TEST_OUT" >>"$LOG"
TEST_RC=${PIPESTATUS[0]}
TEST_SUMMARY="$(grep -E '(passed|failed|error|skipped|no tests ran)' "$TEST_OUT" | tail -1)"
[ "$TEST_RC" = 124 ] && TEST_SUMMARY="timed out after 200 s; last: $TEST_SUMMARY"
say "tests: rc=$TEST_RC $TEST_SUMMARY"

# ---- 3. benchmark
say "running the benchmark"
(cd "$RUN_DIR" && timeout 180 "$PY" "$REPO/bench/gpu_bench.py" --out "$RESULTS" --budget 130 2>&1) >>"$LOG"
BENCH_RC=$?
say "benchmark: rc=$BENCH_RC"
if [ ! -s "$RESULTS" ]; then
    printf '# fastconv GPU benchmark\n\nThe benchmark did not produce results (rc=%s); see bench/gpu_check.log.\n' "$BENCH_RC" > "$RESULTS"
fi
{
    echo ""
    echo "## GPU tests"
    echo ""
    echo "\`pytest tests/test_cuda_compile.py tests/test_gpu.py\`: exit code $TEST_RC, $TEST_SUMMARY"
    FAILS="$(grep -E '^(FAILED|ERROR)' "$TEST_OUT" | head -20)"
    if [ -n "$FAILS" ]; then echo ""; echo '```'; echo "$FAILS"; echo '```'; fi
} >> "$RESULTS"
rm -f "$TEST_OUT"

# ---- 4. the interpretability demos with --device cuda
say "running the demos on the GPU"
DEMO_OUT="$(mktemp -d /tmp/fastconv_gpu_gallery.XXXXXX)"
(cd "$RUN_DIR" && timeout 90 "$PY" -m fastconv.cli demo all --quick --device cuda --out "$DEMO_OUT" 2>&1) >>"$LOG"
DEMO_RC=$?
DEMO_PNGS="$(find "$DEMO_OUT" -name '*.png' | wc -l)"
say "demos: rc=$DEMO_RC, $DEMO_PNGS pictures in $DEMO_OUT"
{
    echo ""
    echo "## Demos on the GPU"
    echo ""
    echo "\`fastconv demo all --quick --device cuda\`: exit code $DEMO_RC, $DEMO_PNGS pictures (log: bench/gpu_check.log)."
} >> "$RESULTS"
say "wrote $RESULTS"
[ "$TEST_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
