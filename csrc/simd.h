// Run-time choice of instruction set.
//
// Every kernel exists in a portable translation unit and, on x86-64, in AVX2 and
// AVX-512 translation units compiled with their own flags. The level is detected
// once (CPUID via the compiler builtins) and may be capped, never raised, by the
// environment variable NCII_HASH_SIMD=scalar|avx2|avx512 or by set_simd_cap().
// Thread-safety: the active level is an atomic; changing it while kernels run is
// allowed (each call reads it once) but meant for tests.
#pragma once

#include <string>

namespace ncii {

enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

// Highest level this CPU (and this build) supports.
SimdLevel detected_simd_level();
// Level in use: min(detected, cap).
SimdLevel active_simd_level();
// Cap the level; returns the level now active. Throws std::invalid_argument on a bad name.
SimdLevel set_simd_cap(const std::string& name);
const char* simd_level_name(SimdLevel level);

}  // namespace ncii
