// Exact multi-index hashing (MIH) over 256-bit codes: range search that reads a small part of
// the bank per query instead of all of it.
//
// Method (Norouzi, Punjani and Fleet, "Fast search in Hamming space with multi-index
// hashing"): cut the 256 bits into m disjoint substrings and index the bank once per substring
// (table i maps each value of substring i to the rows holding it). If code c lies within
// radius r of query q and substring i of c differs from q's in d_i bits, then sum d_i <= r. So
// for any non-negative u_i with sum u_i = r + 1, some substring has d_i <= u_i - 1 (otherwise
// sum d_i >= r + 1): probing, in every table i with u_i > 0, the values within u_i - 1 bits of
// the query's substring finds every code within r. Each candidate found is then verified with
// its full 256-bit distance, so the search is exact for every radius; the u_i only decide how
// much work it takes (see plan()).
//
// Layout: table i is CSR, not a hash map: offsets[v] .. offsets[v + 1] index into rows[], the
// bank rows whose substring i equals v, ascending. 4 bytes per row and table, plus 4 * 2^width
// bytes of offsets per table.
//
// Rows added after a build are not in the tables: the search scans rows [rows(), bank.n) with
// the flat kernel. Tombstones (bank.removed_rows) are skipped as in the flat search. The tables
// never change after construction, so any number of searches may share them.
//
// Auto mode: before verifying, a query's probes already give its exact candidate count; when
// probing and verifying would cost more than its share of a flat scan (skewed buckets:
// low-quality or near-constant codes pile up in a few values; huge radii), the query goes to the
// flat kernel instead, with the other queries that did. The costs are in rough nanoseconds per
// operation, measured on x86-64 servers (benchmarks/bench_match.py prints the routing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hamming.h"
#include "simd.h"

namespace ncii {
namespace mih {

constexpr int kMinSubstrings = 10;  // widths <= 26 bits: offsets of one table <= 256 MiB
constexpr int kMaxSubstrings = 32;  // widths >= 8 bits

// Substring i is bits [start[i], start[i] + width[i]) of a code read as four little-endian
// 64-bit words; the first 256 % m substrings are one bit wider than the rest.
struct Layout {
  int m = 0;
  int start[kMaxSubstrings] = {};
  int width[kMaxSubstrings] = {};

  static Layout split(int m);  // std::invalid_argument unless kMinSubstrings <= m <= kMaxSubstrings
};

class Tables {
 public:
  // Index rows [0, n) of `codes` (n * 32 bytes) in m substring tables, built by counting sort,
  // tables spread over `threads` threads (<= 0: all cores). `codes` is only read here.
  Tables(const uint8_t* codes, std::size_t n, int m, int threads);

  const Layout& layout() const { return layout_; }
  std::size_t rows() const { return n_; }
  std::size_t memory_bytes() const;
  const uint32_t* offsets(int table) const { return offsets_[static_cast<std::size_t>(table)].data(); }
  const uint32_t* rows_of(int table) const { return rows_[static_cast<std::size_t>(table)].data(); }

 private:
  Layout layout_;
  std::size_t n_;
  std::vector<std::vector<uint32_t>> offsets_;  // per table: 2^width + 1
  std::vector<std::vector<uint32_t>> rows_;     // per table: n
};

// Counters of one search call.
struct Stats {
  std::size_t queries = 0;     // queries (all variants of one count once)
  std::size_t scanned = 0;     // queries answered by the flat scan (auto mode)
  std::size_t probes = 0;      // bucket lookups of the probed queries
  std::size_t candidates = 0;  // rows verified for the probed queries (duplicates included)
};

enum class Mode {
  Probe,  // always probe the tables (exact; the cost may exceed a scan's)
  Auto,   // probe or scan per query, whichever the cost model says is cheaper
};

// Like hamming::range_search (same arguments, same output order, same variant rule), answered
// through `tables`, which must index rows [0, tables.rows()) of bank.codes as they are now.
hamming::RangeHits range_search(const Tables& tables, const hamming::Bank& bank, const uint8_t* queries,
                                std::size_t nq, int variants, int radius, int threads, SimdLevel level,
                                Mode mode, Stats* stats);

// The substring count with the lowest modelled cost for `radius` on n uniformly spread codes
// among those whose tables fit in ~110 bytes per row (plus 16 MiB).
int choose_substrings(std::size_t n, int radius);

// Modelled cost of one probed query at `radius` over n uniformly spread codes (for
// choose_substrings and the benchmarks' notes).
double modelled_cost(const Layout& layout, std::size_t n, int radius);

}  // namespace mih
}  // namespace ncii
