// AVX-512 scan kernel (VPOPCNTDQ), built with -mavx512f -mavx512vpopcntdq ... for this file only.
//
// Groups of eight bank rows are transposed (W[j] = 64-bit word j of the eight rows) into a small
// buffer that stays in L1. Four queries at a time are broadcast into registers and the buffer
// streams past them: per group and query, two XORs, two VPOPCNTQ and one add give the distance
// over the first 128 bits of eight pairs, compared with the query's threshold into a mask
// (padding lanes of the last group are zero and masked off only on the rare slow path). Only
// when some lane survives (rare at PDQ radii) are words 2 and 3 counted and hits reported.
#include <immintrin.h>

#include "hamming_kernels.h"

namespace ncii {
namespace hamming {
namespace detail {
namespace {

struct Group {
  __m512i w0, w1, w2, w3;
};

// rows: 8 consecutive codes (256 bytes) -> W[j] = word j of rows 0..7.
static inline Group transpose8(const uint8_t* rows) {
  const __m512i a = _mm512_loadu_si512(rows);        // r0w0..r0w3 r1w0..r1w3
  const __m512i b = _mm512_loadu_si512(rows + 64);   // r2, r3
  const __m512i c = _mm512_loadu_si512(rows + 128);  // r4, r5
  const __m512i d = _mm512_loadu_si512(rows + 192);  // r6, r7
  const __m512i lo_idx = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13);
  const __m512i hi_idx = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
  const __m512i ab01 = _mm512_permutex2var_epi64(a, lo_idx, b);  // r0..r3 w0 | r0..r3 w1
  const __m512i ab23 = _mm512_permutex2var_epi64(a, hi_idx, b);
  const __m512i cd01 = _mm512_permutex2var_epi64(c, lo_idx, d);  // r4..r7 w0 | r4..r7 w1
  const __m512i cd23 = _mm512_permutex2var_epi64(c, hi_idx, d);
  const __m512i first = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11);
  const __m512i second = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
  Group g;
  g.w0 = _mm512_permutex2var_epi64(ab01, first, cd01);
  g.w1 = _mm512_permutex2var_epi64(ab01, second, cd01);
  g.w2 = _mm512_permutex2var_epi64(ab23, first, cd23);
  g.w3 = _mm512_permutex2var_epi64(ab23, second, cd23);
  return g;
}

static inline __m512i partial128(const Group& g, const uint64_t* q) {
  const __m512i x0 = _mm512_xor_si512(g.w0, _mm512_set1_epi64(static_cast<long long>(q[0])));
  const __m512i x1 = _mm512_xor_si512(g.w1, _mm512_set1_epi64(static_cast<long long>(q[1])));
  return _mm512_add_epi64(_mm512_popcnt_epi64(x0), _mm512_popcnt_epi64(x1));
}

// Slow path: finish the distances of one query over the lanes in `candidates`, report hits.
__attribute__((always_inline)) static inline void finish(const ScanArgs& a, const Group& g, __m512i partial, __mmask8 candidates,
                   std::size_t q, std::size_t row0) {
  const uint64_t* w = a.queries + 4 * q;
  const __m512i x2 = _mm512_xor_si512(g.w2, _mm512_set1_epi64(static_cast<long long>(w[2])));
  const __m512i x3 = _mm512_xor_si512(g.w3, _mm512_set1_epi64(static_cast<long long>(w[3])));
  const __m512i full =
      _mm512_add_epi64(partial, _mm512_add_epi64(_mm512_popcnt_epi64(x2), _mm512_popcnt_epi64(x3)));
  unsigned m = _mm512_mask_cmple_epi64_mask(candidates, full, _mm512_set1_epi64(a.thresholds[q]));
  if (!m) return;
  alignas(64) int64_t dist[8];
  _mm512_store_si512(dist, full);
  while (m) {
    const unsigned lane = static_cast<unsigned>(__builtin_ctz(m));
    m &= m - 1;
    if (dist[lane] <= a.thresholds[q]) a.sink->hit(q, row0 + lane, static_cast<int>(dist[lane]));
  }
}

static inline __mmask8 below(__mmask8 lanes, __m512i partial, int32_t threshold) {
  return _mm512_mask_cmple_epi64_mask(lanes, partial, _mm512_set1_epi64(threshold));
}

}  // namespace

void scan_avx512(const ScanArgs& a) {
  // Rows are transposed once per sub-block into an L1-resident buffer; then four queries at a
  // time are held in registers while the sub-block streams past them.
  constexpr std::size_t kSubRows = 256;
  alignas(64) Group groups[kSubRows / 8];
  alignas(64) uint8_t tail[256];
  for (std::size_t sub0 = a.row_begin; sub0 < a.row_end; sub0 += kSubRows) {
    const std::size_t sub_end = (a.row_end - sub0 < kSubRows) ? a.row_end : sub0 + kSubRows;
    const std::size_t ngroups = (sub_end - sub0 + 7) / 8;
    for (std::size_t gi = 0; gi < ngroups; ++gi) {
      const std::size_t row0 = sub0 + gi * 8;
      const uint8_t* rows = a.codes + row0 * 32;
      if (sub_end - row0 < 8) {  // zero-pad the last group; its padding lanes are masked off
        __builtin_memset(tail, 0, sizeof tail);
        __builtin_memcpy(tail, rows, (sub_end - row0) * 32);
        rows = tail;
      }
      groups[gi] = transpose8(rows);
    }
    const std::size_t last_valid = sub_end - (sub0 + (ngroups - 1) * 8);
    const __mmask8 last_lanes = static_cast<__mmask8>((1u << last_valid) - 1u);
    auto lanes_of = [&](std::size_t gi) -> __mmask8 { return gi + 1 == ngroups ? last_lanes : 0xff; };

    std::size_t q = a.q_begin;
    for (; q + 4 <= a.q_end; q += 4) {
      const uint64_t* w = a.queries + 4 * q;
      const __m512i qa0 = _mm512_set1_epi64(static_cast<long long>(w[0]));
      const __m512i qb0 = _mm512_set1_epi64(static_cast<long long>(w[1]));
      const __m512i qa1 = _mm512_set1_epi64(static_cast<long long>(w[4]));
      const __m512i qb1 = _mm512_set1_epi64(static_cast<long long>(w[5]));
      const __m512i qa2 = _mm512_set1_epi64(static_cast<long long>(w[8]));
      const __m512i qb2 = _mm512_set1_epi64(static_cast<long long>(w[9]));
      const __m512i qa3 = _mm512_set1_epi64(static_cast<long long>(w[12]));
      const __m512i qb3 = _mm512_set1_epi64(static_cast<long long>(w[13]));
      __m512i t0 = _mm512_set1_epi64(a.thresholds[q]);
      __m512i t1 = _mm512_set1_epi64(a.thresholds[q + 1]);
      __m512i t2 = _mm512_set1_epi64(a.thresholds[q + 2]);
      __m512i t3 = _mm512_set1_epi64(a.thresholds[q + 3]);
      for (std::size_t gi = 0; gi < ngroups; ++gi) {
        const Group& g = groups[gi];
        const __m512i p0 = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(g.w0, qa0)),
                                            _mm512_popcnt_epi64(_mm512_xor_si512(g.w1, qb0)));
        const __m512i p1 = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(g.w0, qa1)),
                                            _mm512_popcnt_epi64(_mm512_xor_si512(g.w1, qb1)));
        const __m512i p2 = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(g.w0, qa2)),
                                            _mm512_popcnt_epi64(_mm512_xor_si512(g.w1, qb2)));
        const __m512i p3 = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(g.w0, qa3)),
                                            _mm512_popcnt_epi64(_mm512_xor_si512(g.w1, qb3)));
        const __mmask8 m0 = _mm512_cmple_epi64_mask(p0, t0);
        const __mmask8 m1 = _mm512_cmple_epi64_mask(p1, t1);
        const __mmask8 m2 = _mm512_cmple_epi64_mask(p2, t2);
        const __mmask8 m3 = _mm512_cmple_epi64_mask(p3, t3);
        if (__builtin_expect(((m0 | m1) | (m2 | m3)) != 0, 0)) {
          const __mmask8 lanes = lanes_of(gi);
          const std::size_t row0 = sub0 + gi * 8;
          if (m0 & lanes) finish(a, g, p0, m0 & lanes, q, row0);
          if (m1 & lanes) finish(a, g, p1, m1 & lanes, q + 1, row0);
          if (m2 & lanes) finish(a, g, p2, m2 & lanes, q + 2, row0);
          if (m3 & lanes) finish(a, g, p3, m3 & lanes, q + 3, row0);
          // A sink may have lowered thresholds (k-NN).
          t0 = _mm512_set1_epi64(a.thresholds[q]);
          t1 = _mm512_set1_epi64(a.thresholds[q + 1]);
          t2 = _mm512_set1_epi64(a.thresholds[q + 2]);
          t3 = _mm512_set1_epi64(a.thresholds[q + 3]);
        }
      }
    }
    for (; q < a.q_end; ++q) {
      for (std::size_t gi = 0; gi < ngroups; ++gi) {
        const Group& g = groups[gi];
        const __m512i p = partial128(g, a.queries + 4 * q);
        const __mmask8 m = below(lanes_of(gi), p, a.thresholds[q]);
        if (m) finish(a, g, p, m, q, sub0 + gi * 8);
      }
    }
  }
}

}  // namespace detail
}  // namespace hamming
}  // namespace ncii
