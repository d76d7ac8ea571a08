// AVX2 scan kernel, built with -mavx2 for this file only.
//
// Four bank rows are transposed in registers (W[j] = word j of the four rows). Bits are
// counted per byte with the 4-bit lookup table (VPSHUFB) and summed into 64-bit lanes with
// VPSADBW. As in the AVX-512 kernel, the first 128 bits give a lower bound that rejects almost
// every pair before words 2 and 3 are counted.
#include <immintrin.h>

#include "hamming_kernels.h"

namespace ncii {
namespace hamming {
namespace detail {
namespace {

struct Group {
  __m256i w0, w1, w2, w3;
};

static inline Group transpose4(const uint8_t* rows) {
  const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows));
  const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + 32));
  const __m256i r2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + 64));
  const __m256i r3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + 96));
  const __m256i t0 = _mm256_unpacklo_epi64(r0, r1);  // r0w0 r1w0 | r0w2 r1w2
  const __m256i t1 = _mm256_unpackhi_epi64(r0, r1);  // r0w1 r1w1 | r0w3 r1w3
  const __m256i t2 = _mm256_unpacklo_epi64(r2, r3);
  const __m256i t3 = _mm256_unpackhi_epi64(r2, r3);
  Group g;
  g.w0 = _mm256_permute2x128_si256(t0, t2, 0x20);
  g.w1 = _mm256_permute2x128_si256(t1, t3, 0x20);
  g.w2 = _mm256_permute2x128_si256(t0, t2, 0x31);
  g.w3 = _mm256_permute2x128_si256(t1, t3, 0x31);
  return g;
}

// Per-byte popcount of x (each byte 0..8).
static inline __m256i popcount_bytes(__m256i x) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(x, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

// Sum of the popcounts of (a ^ qa) and (b ^ qb) per 64-bit lane.
static inline __m256i count2(__m256i a, __m256i b, const uint64_t* q) {
  const __m256i xa = _mm256_xor_si256(a, _mm256_set1_epi64x(static_cast<long long>(q[0])));
  const __m256i xb = _mm256_xor_si256(b, _mm256_set1_epi64x(static_cast<long long>(q[1])));
  const __m256i bytes = _mm256_add_epi8(popcount_bytes(xa), popcount_bytes(xb));  // <= 16 each
  return _mm256_sad_epu8(bytes, _mm256_setzero_si256());
}

// Bit i set when lane i is a valid row and value <= threshold.
static inline unsigned below(unsigned lanes, __m256i value, int32_t threshold) {
  const __m256i gt = _mm256_cmpgt_epi64(value, _mm256_set1_epi64x(threshold));
  return ~static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(gt))) & lanes;
}

__attribute__((always_inline)) static inline void finish(const ScanArgs& a, const Group& g, __m256i partial, unsigned candidates,
                   std::size_t q, std::size_t row0) {
  const __m256i full = _mm256_add_epi64(partial, count2(g.w2, g.w3, a.queries + 4 * q + 2));
  unsigned m = below(candidates, full, a.thresholds[q]);
  if (!m) return;
  alignas(32) int64_t dist[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(dist), full);
  while (m) {
    const unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
    m &= m - 1;
    if (dist[lane] <= a.thresholds[q]) a.sink->hit(q, row0 + lane, static_cast<int>(dist[lane]));
  }
}

}  // namespace

void scan_avx2(const ScanArgs& a) {
  alignas(32) uint8_t tail[128];
  for (std::size_t row0 = a.row_begin; row0 < a.row_end; row0 += 4) {
    const std::size_t valid = (a.row_end - row0 < 4) ? a.row_end - row0 : 4;
    const uint8_t* rows = a.codes + row0 * 32;
    if (valid < 4) {  // zero-pad the last group; its padding lanes are masked off
      __builtin_memset(tail, 0, sizeof tail);
      __builtin_memcpy(tail, rows, valid * 32);
      rows = tail;
    }
    const unsigned lanes = (1u << valid) - 1u;
    const Group g = transpose4(rows);
    std::size_t q = a.q_begin;
    for (; q + 2 <= a.q_end; q += 2) {
      const __m256i p0 = count2(g.w0, g.w1, a.queries + 4 * q);
      const __m256i p1 = count2(g.w0, g.w1, a.queries + 4 * (q + 1));
      const unsigned m0 = below(lanes, p0, a.thresholds[q]);
      const unsigned m1 = below(lanes, p1, a.thresholds[q + 1]);
      if (__builtin_expect((m0 | m1) != 0, 0)) {
        if (m0) finish(a, g, p0, m0, q, row0);
        if (m1) finish(a, g, p1, m1, q + 1, row0);
      }
    }
    for (; q < a.q_end; ++q) {
      const __m256i p = count2(g.w0, g.w1, a.queries + 4 * q);
      const unsigned m = below(lanes, p, a.thresholds[q]);
      if (m) finish(a, g, p, m, q, row0);
    }
  }
}

#define NCII_VERIFY_NAME verify_popcnt
#include "verify_kernel.inc"
#undef NCII_VERIFY_NAME

}  // namespace detail
}  // namespace hamming
}  // namespace ncii
