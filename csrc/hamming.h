// Exact Hamming search over 256-bit codes (PDQ hashes): range search and k-NN.
//
// Invariants:
//  * A code is 32 bytes; a bank is a C-contiguous (n, 32) uint8 array. The distance of two
//    codes is the number of differing bits (0..256), independent of byte order.
//  * Range search is inclusive: a pair matches when distance <= radius.
//  * Results identify bank entries by id: ids[row] when an id array is given, otherwise the
//    row number. Rows listed in `removed_rows` (tombstones, sorted ascending) never appear.
//  * Results are deterministic and independent of the thread count and SIMD level: range
//    hits per query are ordered by (distance, id); k-NN keeps the k smallest (distance, id)
//    pairs, so ties at the k-th distance go to the smaller id.
//  * Thread-safety: every function only reads its inputs; concurrent calls are safe as long
//    as nobody writes to the bank meanwhile. Work is split over std::threads by bank block;
//    an error in a worker is rethrown once, in the calling thread, after all workers joined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "simd.h"

namespace ncii {
namespace hamming {

constexpr std::size_t kCodeBytes = 32;
constexpr int kCodeBits = 256;
// k-NN slots without a bank entry (fewer than k live codes) hold this id and distance.
constexpr int64_t kMissingId = -1;
constexpr int32_t kMissingDistance = std::numeric_limits<int32_t>::max();

struct Bank {
  const uint8_t* codes = nullptr;  // n * 32 bytes
  std::size_t n = 0;
  const int64_t* ids = nullptr;           // n ids, or nullptr: the id of a row is its number
  const int64_t* removed_rows = nullptr;  // sorted ascending, or nullptr
  std::size_t n_removed = 0;
};

// Range-search output in CSR form: the hits of query q are [lims[q], lims[q+1]).
struct RangeHits {
  std::vector<int64_t> lims;
  std::vector<int64_t> ids;
  std::vector<int32_t> distances;
  std::vector<int8_t> variants;  // which of a query's variants gave the distance (variants > 1)
};

// One hit on its way into RangeHits: bank entry `id` at `distance` from query `query` (not
// flattened), reached by its variant `variant`.
struct Hit {
  std::size_t query;
  int64_t id;
  int32_t distance;
  int8_t variant;
};

// The one merge of hits into RangeHits (consumes `hits`): each query's hits ordered by
// (distance, id); with variants > 1 each (query, id) pair once, with its smallest distance and
// the lowest variant reaching it.
RangeHits merge_hits(std::vector<Hit>& hits, std::size_t nq, int variants);

// All bank entries within `radius` (0..256) of each query.
// `queries` holds nq * variants codes: query q is the set of rows q*variants .. q*variants +
// variants - 1 (e.g. the 8 dihedral transforms of one image). A bank entry is reported once
// per query with its smallest distance over the variants and the lowest variant index that
// reaches it. threads <= 0 means all hardware threads.
RangeHits range_search(const Bank& bank, const uint8_t* queries, std::size_t nq, int variants,
                       int radius, int threads, SimdLevel level);

// The k nearest bank entries of each query, as (nq, k) arrays in row-major order, ascending
// by (distance, id); missing slots are (kMissingId, kMissingDistance).
void knn_search(const Bank& bank, const uint8_t* queries, std::size_t nq, int k, int threads,
                SimdLevel level, int64_t* out_ids, int32_t* out_distances);

// XOR of all 64-bit words of data[0, bytes) (bytes a multiple of 8), read sequentially by
// `threads` threads over contiguous slices: the memory-bandwidth probe that benchmarks set
// search speed against (a single-query scan cannot beat bank bytes / this bandwidth).
uint64_t xor_fold(const uint8_t* data, std::size_t bytes, int threads);

// Number of worker threads a call with `threads` would use at most (threads <= 0: all).
int resolve_threads(int threads);

}  // namespace hamming
}  // namespace ncii
