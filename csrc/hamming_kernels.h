// Internal interface between the search drivers (hamming.cpp, portable flags) and the scan
// kernels (hamming_scalar.cpp, hamming_avx2.cpp, hamming_avx512.cpp, each built with its own
// instruction-set flags).
//
// The kernel translation units use no C++ standard-library templates and no inline
// functions shared with other translation units: an inline function compiled with AVX-512
// flags could otherwise be picked by the linker for the portable code too. Hits go back
// through a virtual call into hamming.cpp instead.
//
// Contract of a scan: for every row in [row_begin, row_end) and query in [q_begin, q_end),
// call sink->hit(query, row, distance) when distance <= thresholds[query] (a threshold of -1
// disables a query). The sink may lower thresholds[query] inside hit(); the kernel reads the
// threshold again before later comparisons (a stale, higher threshold only costs a call).
// Kernels may skip a pair early when the distance over the first 128 bits alone already
// exceeds the threshold: that partial distance is a lower bound, so nothing is lost.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ncii {
namespace hamming {
namespace detail {

class HitSink {
 public:
  virtual void hit(std::size_t query, std::size_t row, int distance) = 0;

 protected:
  ~HitSink() = default;
};

struct ScanArgs {
  const uint8_t* codes;     // the whole bank, row-major, 32 bytes per row
  std::size_t row_begin;
  std::size_t row_end;
  const uint64_t* queries;  // 4 words per query (the query's 32 bytes, loaded as uint64)
  std::size_t q_begin;
  std::size_t q_end;
  int32_t* thresholds;      // one per query, indexed like queries
  HitSink* sink;
};

// Verification of a candidate list against one query (multi-index search, csrc/mih.*): for
// each i in [0, count) whose code codes[rows[i]] lies within `threshold` of `query`, writes
// rows[i] and the distance to out_rows / out_distances (in input order); returns how many.
// The candidates are random rows of a large bank: kernels prefetch a few of them ahead.
struct VerifyArgs {
  const uint8_t* codes;
  const uint32_t* rows;
  std::size_t count;
  const uint64_t* query;  // 4 words
  int32_t threshold;
  uint32_t* out_rows;
  int32_t* out_distances;
};

void scan_scalar(const ScanArgs& args);
std::size_t verify_scalar(const VerifyArgs& args);
#if defined(NCII_HAVE_X86_KERNELS)
void scan_avx2(const ScanArgs& args);
void scan_avx512(const ScanArgs& args);
std::size_t verify_popcnt(const VerifyArgs& args);  // hamming_avx2.cpp: POPCNT instruction
#endif

}  // namespace detail
}  // namespace hamming
}  // namespace ncii
