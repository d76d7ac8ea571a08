// Portable scan kernel: four 64-bit popcounts per pair, built with the baseline flags.
#include "hamming_kernels.h"

namespace ncii {
namespace hamming {
namespace detail {

void scan_scalar(const ScanArgs& a) {
  for (std::size_t row = a.row_begin; row < a.row_end; ++row) {
    uint64_t c[4];
    __builtin_memcpy(c, a.codes + row * 32, 32);
    for (std::size_t q = a.q_begin; q < a.q_end; ++q) {
      const uint64_t* w = a.queries + 4 * q;
      const int partial = __builtin_popcountll(c[0] ^ w[0]) + __builtin_popcountll(c[1] ^ w[1]);
      if (partial > a.thresholds[q]) continue;
      const int d = partial + __builtin_popcountll(c[2] ^ w[2]) + __builtin_popcountll(c[3] ^ w[3]);
      if (d <= a.thresholds[q]) a.sink->hit(q, row, d);
    }
  }
}

#define NCII_VERIFY_NAME verify_scalar
#include "verify_kernel.inc"
#undef NCII_VERIFY_NAME

}  // namespace detail
}  // namespace hamming
}  // namespace ncii
