// The portable 4-lane PDQ kernel (csrc/pdq_kernel.inc, as pdq_scalar.cpp includes it) for
// clang/wasm. The kernel's in-register transpose calls GCC's two-operand __builtin_shuffle
// with mask vectors `lo` and `hi` that it fills in a loop; clang has no such builtin, and an
// element-wise stand-in that indexes by the mask at run time made the transposes 60% of the
// hashing time. So the call is mapped, by the mask's name and the stage's `bit` (both in scope
// at the call in transpose_stage), to clang's __builtin_shufflevector with the same indices
// as compile-time constants: lo[j] = j & bit ? K + (j ^ bit) : j, hi[j] = j & bit ? K + j :
// j ^ bit. If the kernel's names change this stops compiling rather than misbehaving. It only
// moves floats, so it cannot change a result bit (tests/test_wasm.py checks all of them).
#include <cstddef>
#include <utility>

namespace ncii_wasm {

template <typename V>
constexpr int lanes() {
  return static_cast<int>(sizeof(V) / sizeof(float));
}

template <int Bit, typename V, std::size_t... J>
inline V shuffle_lo(V a, V b, std::index_sequence<J...>) {
  return __builtin_shufflevector(a, b, ((J & Bit) ? lanes<V>() + (J ^ Bit) : J)...);
}

template <int Bit, typename V, std::size_t... J>
inline V shuffle_hi(V a, V b, std::index_sequence<J...>) {
  return __builtin_shufflevector(a, b, ((J & Bit) ? lanes<V>() + J : (J ^ Bit))...);
}

}  // namespace ncii_wasm

#define __builtin_shuffle(a, b, mask) \
  ::ncii_wasm::shuffle_##mask<bit>((a), (b), std::make_index_sequence<::ncii_wasm::lanes<vf>()>{})
#define NCII_PDQ_NS kernel_scalar
#define NCII_PDQ_LANES 4
#include "../pdq_kernel.inc"
