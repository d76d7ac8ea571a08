#include "simd.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace ncii {
namespace {

SimdLevel detect() {
#if defined(NCII_HAVE_X86_KERNELS) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vpopcntdq");
  if (avx512) return SimdLevel::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return SimdLevel::AVX2;
#endif
  return SimdLevel::Scalar;
}

SimdLevel parse(const std::string& name) {
  if (name == "scalar") return SimdLevel::Scalar;
  if (name == "avx2") return SimdLevel::AVX2;
  if (name == "avx512") return SimdLevel::AVX512;
  throw std::invalid_argument("unknown SIMD level '" + name +
                              "': use one of 'scalar', 'avx2', 'avx512'");
}

SimdLevel initial_level() {
  SimdLevel level = detect();
  if (const char* env = std::getenv("NCII_HASH_SIMD")) {
    std::string name(env);
    if (!name.empty()) {
      SimdLevel cap;
      try {
        cap = parse(name);
      } catch (const std::invalid_argument&) {
        return level;  // ignore a malformed variable rather than refuse to load
      }
      if (static_cast<int>(cap) < static_cast<int>(level)) level = cap;
    }
  }
  return level;
}

std::atomic<int>& active() {
  static std::atomic<int> value{static_cast<int>(initial_level())};
  return value;
}

}  // namespace

SimdLevel detected_simd_level() {
  static const SimdLevel level = detect();
  return level;
}

SimdLevel active_simd_level() { return static_cast<SimdLevel>(active().load(std::memory_order_relaxed)); }

SimdLevel set_simd_cap(const std::string& name) {
  SimdLevel cap = parse(name);
  SimdLevel level = detected_simd_level();
  if (static_cast<int>(cap) < static_cast<int>(level)) level = cap;
  active().store(static_cast<int>(level), std::memory_order_relaxed);
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace ncii
