#!/bin/sh
# Builds the PDQ core to WebAssembly (docs/wasm.md): two modules, pdq-simd.wasm (SIMD128) and
# pdq.wasm (scalar fallback), from the same sources as the native module. Reproducible: the
# flags are fixed here, no timestamp or path is embedded (no debug info, file-prefix map),
# and Debian's emscripten 3.1.6 is the toolchain the committed files were built with.
#   wasm/build.sh [OUTDIR]      (default: the survivor page's assets in the package)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/src/ncii_hash/service/survivor/assets}
mkdir -p "$out"
cd "$here"
export SOURCE_DATE_EPOCH=0
# No fast-math, no FMA contraction: the float semantics of the native PDQ translation units.
common="-std=c++17 -O3 -ffp-contract=off -fno-fast-math -Wall -Wextra -ffile-prefix-map=$here=. \
  --no-entry -sSTANDALONE_WASM=1 -sFILESYSTEM=0 -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=16MB \
  -sMAXIMUM_MEMORY=1GB -sTOTAL_STACK=1MB -sMALLOC=dlmalloc -sABORTING_MALLOC=0 -sEXPORTED_FUNCTIONS=[]"
sources="csrc/wasm/pdq_wasm.cpp csrc/wasm/pdq_kernel_wasm.cpp csrc/pdq.cpp csrc/pdq_reference.cpp"
# shellcheck disable=SC2086
em++ $common -msimd128 $sources -o "$out/pdq-simd.wasm"
# shellcheck disable=SC2086
em++ $common $sources -o "$out/pdq.wasm"
sha256sum "$out/pdq-simd.wasm" "$out/pdq.wasm" | sed "s|$out/||"
