// The portable 4-lane PDQ kernel (csrc/pdq_kernel.inc, as in pdq_scalar.cpp) for clang/wasm.
// The kernel's in-register transpose uses GCC's two-operand __builtin_shuffle with a mask
// vector, which clang lacks; this file supplies it as a plain element-wise selection (after
// inlining the masks are constants and clang emits i8x16.shuffle). It only moves floats, so
// it cannot change a result bit.
#include <cstddef>

namespace ncii_wasm {
template <typename V, typename M>
inline V shuffle2(V a, V b, M m) {
  constexpr int n = sizeof(V) / sizeof(a[0]);
  V r;
  for (int j = 0; j < n; ++j) r[j] = m[j] < n ? a[m[j]] : b[m[j] - n];
  return r;
}
}  // namespace ncii_wasm

#define __builtin_shuffle(a, b, m) ::ncii_wasm::shuffle2((a), (b), (m))
#define NCII_PDQ_NS kernel_scalar
#define NCII_PDQ_LANES 4
#include "../pdq_kernel.inc"
