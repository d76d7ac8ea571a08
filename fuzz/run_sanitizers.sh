#!/usr/bin/env bash
# Build the C++ core with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# NCII_SANITIZE) into its own virtual environment and run the tests that exercise the core.
#
#   bash fuzz/run_sanitizers.sh [VENV] [pytest args...]      (default VENV: .venv-asan)
#
# Needs GCC (for libasan/libstdc++) and the project's build requirements. Python itself is not
# instrumented, so the ASan runtime is preloaded; libstdc++ is preloaded after it so that
# ASan's __cxa_throw interceptor finds the real function (without it, the first C++ exception
# -- e.g. a ValueError raised from the core for a bad radius -- aborts with
# "CHECK failed: asan_interceptors.cpp ... real___cxa_throw"). Leak checking is off: CPython
# keeps interned objects alive until exit by design.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-asan}"
shift || true
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/pip" install -q --no-build-isolation \
  -C cmake.define.NCII_SANITIZE=ON -C build-dir=build/asan .
PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The src/ layout keeps the checkout off sys.path: the sanitized, installed package is tested.
LD_PRELOAD="$PRELOAD" "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_hamming.py tests/test_pdq_api.py tests/test_pdq_oracle.py tests/test_pdq_conformance.py \
  tests/test_index.py tests/test_hashes.py "$@"
LD_PRELOAD="$PRELOAD" "$VENV/bin/python" fuzz/core_shapes.py
