// Multi-index hashing: table build, per-query plans, probing, verification and auto routing
// (portable flags; the verification loop is a per-instruction-set kernel, see
// hamming_kernels.h).
#include "mih.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "hamming_kernels.h"
#include "parallel.h"

namespace ncii {
namespace mih {
namespace {

using hamming::Hit;
using hamming::RangeHits;

// Cost model, in nanoseconds on one core, measured with benchmarks/bench_match.py on an x86-64
// server (AMD EPYC, DDR5): a bucket lookup is a random read of the offsets plus, when the bucket
// is not empty, of its rows; a candidate is a random 32-byte read and a popcount -- with the
// per-query bookkeeping, 25-35 ns per operation whether the tables are in cache (100k rows) or
// not (10M); the flat scan costs kScanRowMemory per row once per call (memory bound) plus
// kScanRowQuery per row and query (compute bound, large batches). With these, a batch of 1000
// queries on 100k rows is scanned (as fast as probing there) and everything at 1M+ is probed.
constexpr double kProbeCost = 24.0;
constexpr double kCandidateCost = 28.0;
constexpr double kScanRowMemory = 1.2;
constexpr double kScanRowQuery = 0.15;
constexpr std::size_t kTableBudgetPerRow = 110;
constexpr std::size_t kTableBudgetFixed = std::size_t{16} << 20;

using VerifyFn = std::size_t (*)(const hamming::detail::VerifyArgs&);

VerifyFn pick_verify(SimdLevel level) {
#if defined(NCII_HAVE_X86_KERNELS)
  if (level != SimdLevel::Scalar) return hamming::detail::verify_popcnt;
#else
  (void)level;
#endif
  return hamming::detail::verify_scalar;
}

inline void load_words(const uint8_t* code, uint64_t w[4]) { std::memcpy(w, code, 32); }

inline uint32_t extract(const uint64_t w[4], int start, int width) {
  const int j = start >> 6, s = start & 63;
  uint64_t v = w[j] >> s;
  if (s + width > 64) v |= w[j + 1] << (64 - s);
  return static_cast<uint32_t>(v & ((uint64_t{1} << width) - 1));
}

// Number of values within t bits of a width-bit value (t < 0: none), saturating at 2^width.
double ball_size(int width, int t) {
  if (t < 0) return 0.0;
  if (t >= width) return std::ldexp(1.0, width);
  double total = 0.0, term = 1.0;
  for (int k = 0; k <= t; ++k) {
    total += term;
    term = term * (width - k) / (k + 1);
  }
  return std::min(total, std::ldexp(1.0, width));
}

// How far each substring may differ for `radius`: u_i = flips[i] + 1 >= 0 with sum u_i =
// radius + 1, as even as possible, the wider substrings (fewer rows per value) first.
void plan(const Layout& layout, int radius, int flips[kMaxSubstrings]) {
  const int total = radius + 1, m = layout.m;
  const int base = total / m, extra = total % m;
  for (int i = 0; i < m; ++i) flips[i] = base + (i < extra ? 1 : 0) - 1;
}

// Calls f(value) for every value within t bits of `base` (t < width), each once.
template <class F>
void for_each_near(uint32_t base, int width, int t, F&& f) {
  f(base);
  const uint64_t limit = uint64_t{1} << width;
  for (int k = 1; k <= t; ++k) {
    uint64_t mask = (uint64_t{1} << k) - 1;
    while (mask < limit) {
      f(base ^ static_cast<uint32_t>(mask));
      const uint64_t low = mask & (~mask + 1);  // next mask with k bits (Gosper)
      const uint64_t ripple = mask + low;
      mask = (((ripple ^ mask) >> 2) / low) | ripple;
    }
  }
}

struct Range {
  uint32_t table, begin, end;
};

// Per-thread scratch, reused across the queries of one call.
struct Scratch {
  std::vector<uint32_t> keys;
  std::vector<Range> ranges;
  std::vector<std::size_t> starts;  // ranges of variant k: [starts[k], starts[k + 1])
  std::vector<uint32_t> candidates;
  std::vector<uint32_t> found_rows;
  std::vector<int32_t> found_distances;
  std::vector<std::pair<uint32_t, int32_t>> hits;  // (row, distance) of one query code
  std::vector<Hit> out;                            // this thread's hits
  std::vector<std::size_t> scan;                   // queries routed to the flat scan
  Stats stats;
};

// Probing and verification of single query codes against one set of tables.
class Prober {
 public:
  Prober(const Tables& tables, int radius, SimdLevel level)
      : t_(tables), radius_(radius), verify_(pick_verify(level)) {
    plan(t_.layout(), radius, flips_);
    for (int i = 0; i < t_.layout().m; ++i)  // the same for every query: decided once per call
      whole_[i] = ball_size(t_.layout().width[i], flips_[i]) >= std::ldexp(1.0, t_.layout().width[i]);
  }

  // Append the non-empty buckets of one query code to s.ranges; returns (probes, candidates).
  std::pair<std::size_t, std::size_t> probe(const uint8_t* code, Scratch& s) const {
    uint64_t w[4];
    load_words(code, w);
    const Layout& L = t_.layout();
    std::size_t probes = 0, candidates = 0;
    for (int i = 0; i < L.m; ++i) {
      const int t = flips_[i];
      if (t < 0) continue;
      const uint32_t* off = t_.offsets(i);
      const uint32_t table = static_cast<uint32_t>(i);
      if (whole_[i]) {  // every value is within t bits: the whole table
        const uint32_t end = off[std::size_t{1} << L.width[i]];
        if (end) s.ranges.push_back(Range{table, 0, end});
        probes += 1;
        candidates += end;
        continue;
      }
      s.keys.clear();
      for_each_near(extract(w, L.start[i], L.width[i]), L.width[i], t, [&](uint32_t v) { s.keys.push_back(v); });
      for (uint32_t v : s.keys) __builtin_prefetch(off + v);
      for (uint32_t v : s.keys) {
        const uint32_t b = off[v], e = off[v + 1];
        if (b != e) {
          __builtin_prefetch(t_.rows_of(i) + b);  // gathered in verify(): in cache by then
          s.ranges.push_back(Range{table, b, e});
          candidates += e - b;
        }
      }
      probes += s.keys.size();
    }
    return {probes, candidates};
  }

  // Verify the rows of s.ranges[first, last) against one query code: s.hits gets each row
  // within the radius once, ascending by row.
  void verify(const uint8_t* codes, const uint8_t* code, Scratch& s, std::size_t first, std::size_t last) const {
    uint64_t w[4];
    load_words(code, w);
    s.candidates.clear();
    for (std::size_t r = first; r < last; ++r) {
      const Range& g = s.ranges[r];
      const uint32_t* rows = t_.rows_of(static_cast<int>(g.table));
      s.candidates.insert(s.candidates.end(), rows + g.begin, rows + g.end);
    }
    const std::size_t n = s.candidates.size();
    if (s.found_rows.size() < n) {
      s.found_rows.resize(n);
      s.found_distances.resize(n);
    }
    const hamming::detail::VerifyArgs args{codes, s.candidates.data(), n, w, radius_,
                                           s.found_rows.data(), s.found_distances.data()};
    const std::size_t found = verify_(args);
    s.hits.clear();
    for (std::size_t k = 0; k < found; ++k) s.hits.emplace_back(s.found_rows[k], s.found_distances[k]);
    // A row can sit in the probed buckets of several tables: keep it once.
    std::sort(s.hits.begin(), s.hits.end());
    s.hits.erase(std::unique(s.hits.begin(), s.hits.end()), s.hits.end());
  }

 private:
  const Tables& t_;
  int radius_;
  VerifyFn verify_;
  int flips_[kMaxSubstrings];
  bool whole_[kMaxSubstrings] = {};
};

bool is_removed(const hamming::Bank& bank, std::size_t row) {
  return bank.n_removed && std::binary_search(bank.removed_rows, bank.removed_rows + bank.n_removed,
                                              static_cast<int64_t>(row));
}

int64_t id_of(const hamming::Bank& bank, std::size_t row) {
  return bank.ids ? bank.ids[row] : static_cast<int64_t>(row);
}

// Flat search of `queries` (all variants of each) over `bank`, its hits appended to `out`
// with row offset `row0` added before the id lookup in `full` and query q renamed to index[q].
void scan_into(const hamming::Bank& bank, const std::vector<std::size_t>& index, const uint8_t* queries,
               int variants, int radius, int threads, SimdLevel level, std::vector<Hit>& out) {
  if (index.empty() || bank.n == 0) return;
  const std::size_t v = static_cast<std::size_t>(variants);
  std::vector<uint8_t> buf(index.size() * v * hamming::kCodeBytes);
  for (std::size_t k = 0; k < index.size(); ++k)
    std::memcpy(buf.data() + k * v * hamming::kCodeBytes, queries + index[k] * v * hamming::kCodeBytes,
                v * hamming::kCodeBytes);
  RangeHits hits = hamming::range_search(bank, buf.data(), index.size(), variants, radius, threads, level);
  for (std::size_t k = 0; k < index.size(); ++k)
    for (int64_t j = hits.lims[k]; j < hits.lims[k + 1]; ++j)
      out.push_back(Hit{index[k], hits.ids[static_cast<std::size_t>(j)], hits.distances[static_cast<std::size_t>(j)],
                        variants > 1 ? hits.variants[static_cast<std::size_t>(j)] : int8_t{0}});
}

}  // namespace

Layout Layout::split(int m) {
  if (m < kMinSubstrings || m > kMaxSubstrings)
    throw std::invalid_argument("substrings must be between " + std::to_string(kMinSubstrings) + " and " +
                                std::to_string(kMaxSubstrings) + ", got " + std::to_string(m));
  Layout L;
  L.m = m;
  int start = 0;
  for (int i = 0; i < m; ++i) {
    L.start[i] = start;
    L.width[i] = hamming::kCodeBits / m + (i < hamming::kCodeBits % m ? 1 : 0);
    start += L.width[i];
  }
  return L;
}

Tables::Tables(const uint8_t* codes, std::size_t n, int m, int threads) : layout_(Layout::split(m)), n_(n) {
  if (n > UINT32_MAX - 1) throw std::invalid_argument("the multi-index holds at most 2^32 - 2 rows");
  if (n && !codes) throw std::invalid_argument("codes must not be null");
  offsets_.resize(static_cast<std::size_t>(m));
  rows_.resize(static_cast<std::size_t>(m));
  const std::size_t nthreads = std::max<std::size_t>(
      1, std::min<std::size_t>(static_cast<std::size_t>(hamming::resolve_threads(threads)), static_cast<std::size_t>(m)));
  std::atomic<int> next{0};
  run_parallel(nthreads, [&](std::size_t) {
    std::vector<uint32_t> keys(n);
    for (;;) {
      const int i = next.fetch_add(1);
      if (i >= m) break;
      const std::size_t values = std::size_t{1} << layout_.width[i];
      std::vector<uint32_t>& off = offsets_[static_cast<std::size_t>(i)];
      std::vector<uint32_t>& rows = rows_[static_cast<std::size_t>(i)];
      off.assign(values + 1, 0);
      rows.resize(n);
      for (std::size_t r = 0; r < n; ++r) {
        uint64_t w[4];
        load_words(codes + r * hamming::kCodeBytes, w);
        keys[r] = extract(w, layout_.start[i], layout_.width[i]);
        ++off[keys[r] + 1];
      }
      for (std::size_t v = 0; v < values; ++v) off[v + 1] += off[v];
      std::vector<uint32_t> pos(off.begin(), off.end() - 1);
      for (std::size_t r = 0; r < n; ++r) rows[pos[keys[r]]++] = static_cast<uint32_t>(r);
    }
  });
}

std::size_t Tables::memory_bytes() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < offsets_.size(); ++i)
    total += offsets_[i].size() * sizeof(uint32_t) + rows_[i].size() * sizeof(uint32_t);
  return total;
}

double modelled_cost(const Layout& layout, std::size_t n, int radius) {
  int flips[kMaxSubstrings];
  plan(layout, radius, flips);
  double cost = 0.0;
  for (int i = 0; i < layout.m; ++i) {
    const double probes = ball_size(layout.width[i], flips[i]);
    cost += probes * (kProbeCost + kCandidateCost * static_cast<double>(n) / std::ldexp(1.0, layout.width[i]));
  }
  return cost;
}

int choose_substrings(std::size_t n, int radius) {
  const double budget = static_cast<double>(kTableBudgetPerRow) * static_cast<double>(n) +
                        static_cast<double>(kTableBudgetFixed);
  int best = kMaxSubstrings;
  double best_cost = -1.0;
  for (int m = kMinSubstrings; m <= kMaxSubstrings; ++m) {
    const Layout L = Layout::split(m);
    double memory = 4.0 * m * static_cast<double>(n);
    for (int i = 0; i < m; ++i) memory += 4.0 * (std::ldexp(1.0, L.width[i]) + 1.0);
    if (memory > budget) continue;
    const double cost = modelled_cost(L, n, radius);
    if (best_cost < 0.0 || cost < best_cost) {
      best = m;
      best_cost = cost;
    }
  }
  return best;
}

RangeHits range_search(const Tables& tables, const hamming::Bank& bank, const uint8_t* queries, std::size_t nq,
                       int variants, int radius, int threads, SimdLevel level, Mode mode, Stats* stats) {
  if (radius < 0 || radius > hamming::kCodeBits)
    throw std::invalid_argument("radius must be between 0 and 256, got " + std::to_string(radius));
  if (variants < 1 || variants > 127)
    throw std::invalid_argument("variants per query must be between 1 and 127, got " + std::to_string(variants));
  if (tables.rows() > bank.n) throw std::invalid_argument("the multi-index covers more rows than the bank has");
  if (bank.n && !bank.codes) throw std::invalid_argument("bank codes must not be null");
  if (bank.n_removed && !bank.removed_rows) throw std::invalid_argument("removed rows must not be null");
  if (nq && !queries) throw std::invalid_argument("queries must not be null");
  const std::size_t v = static_cast<std::size_t>(variants);

  // A query goes to the scan when probing it would cost more than its share of a flat scan
  // of the whole call (memory once, compute per query code).
  const double nflat = static_cast<double>(nq * v);
  const double scan_share = static_cast<double>(bank.n) * (kScanRowMemory / std::max(1.0, nflat) + kScanRowQuery) *
                            static_cast<double>(v);

  const std::size_t nthreads = std::max<std::size_t>(
      1, std::min<std::size_t>(static_cast<std::size_t>(hamming::resolve_threads(threads)), nq));
  // Before probing anything: the plan's cost on uniformly spread codes (modelled_cost; real
  // buckets are rarely emptier). A call whose every query would lose to the scan is scanned
  // whole, without probing (e.g. large batches over small banks).
  const double expected = modelled_cost(tables.layout(), tables.rows(), radius) * static_cast<double>(v);
  if (mode == Mode::Auto && expected > scan_share) {
    if (stats) {
      *stats = Stats{};
      stats->queries = stats->scanned = nq;
    }
    return hamming::range_search(bank, queries, nq, variants, radius, threads, level);
  }
  std::vector<Scratch> scratch(nthreads);
  std::atomic<std::size_t> next{0};
  constexpr std::size_t kChunk = 16;
  const Prober prober(tables, radius, level);
  run_parallel(nthreads, [&](std::size_t th) {
    Scratch& s = scratch[th];
    for (;;) {
      const std::size_t q0 = next.fetch_add(kChunk);
      if (q0 >= nq) break;
      for (std::size_t q = q0; q < std::min(nq, q0 + kChunk); ++q) {
        ++s.stats.queries;
        s.ranges.clear();
        std::size_t probes = 0, candidates = 0;
        s.starts.assign(v + 1, 0);
        for (std::size_t k = 0; k < v; ++k) {
          s.starts[k] = s.ranges.size();
          // A variant equal to an earlier one (symmetric pictures) would find the same rows
          // at the same distances with a higher variant number, which the merge drops: skip it.
          const uint8_t* code = queries + (q * v + k) * hamming::kCodeBytes;
          bool repeat = false;
          for (std::size_t j = 0; j < k && !repeat; ++j)
            repeat = std::memcmp(code, queries + (q * v + j) * hamming::kCodeBytes, hamming::kCodeBytes) == 0;
          if (repeat) continue;
          const auto pc = prober.probe(code, s);
          probes += pc.first;
          candidates += pc.second;
        }
        s.starts[v] = s.ranges.size();
        const double cost = kProbeCost * static_cast<double>(probes) + kCandidateCost * static_cast<double>(candidates);
        if (mode == Mode::Auto && cost > scan_share) {
          s.scan.push_back(q);
          ++s.stats.scanned;
          continue;
        }
        s.stats.probes += probes;
        s.stats.candidates += candidates;
        for (std::size_t k = 0; k < v; ++k) {
          prober.verify(bank.codes, queries + (q * v + k) * hamming::kCodeBytes, s, s.starts[k], s.starts[k + 1]);
          for (const auto& h : s.hits)
            if (!is_removed(bank, h.first))
              s.out.push_back(Hit{q, id_of(bank, h.first), h.second, static_cast<int8_t>(k)});
        }
      }
    }
  });

  std::vector<Hit> hits;
  std::vector<std::size_t> scan, probed;
  std::vector<bool> is_scanned(nq, false);
  Stats total;
  for (Scratch& s : scratch) {
    hits.insert(hits.end(), s.out.begin(), s.out.end());
    std::vector<Hit>().swap(s.out);
    scan.insert(scan.end(), s.scan.begin(), s.scan.end());
    total.queries += s.stats.queries;
    total.scanned += s.stats.scanned;
    total.probes += s.stats.probes;
    total.candidates += s.stats.candidates;
  }
  std::sort(scan.begin(), scan.end());
  for (std::size_t q : scan) is_scanned[q] = true;
  for (std::size_t q = 0; q < nq; ++q)
    if (!is_scanned[q]) probed.push_back(q);

  // Routed queries: the whole bank. Probed queries: the rows added since the tables were built.
  scan_into(bank, scan, queries, variants, radius, threads, level, hits);
  if (tables.rows() < bank.n && !probed.empty()) {
    const std::size_t r0 = tables.rows();
    std::vector<int64_t> tail_removed;
    for (std::size_t k = 0; k < bank.n_removed; ++k)
      if (bank.removed_rows[k] >= static_cast<int64_t>(r0)) tail_removed.push_back(bank.removed_rows[k] - static_cast<int64_t>(r0));
    std::vector<int64_t> tail_ids;
    if (!bank.ids) {
      tail_ids.resize(bank.n - r0);
      for (std::size_t r = r0; r < bank.n; ++r) tail_ids[r - r0] = static_cast<int64_t>(r);
    }
    hamming::Bank tail;
    tail.codes = bank.codes + r0 * hamming::kCodeBytes;
    tail.n = bank.n - r0;
    tail.ids = bank.ids ? bank.ids + r0 : tail_ids.data();
    tail.removed_rows = tail_removed.empty() ? nullptr : tail_removed.data();
    tail.n_removed = tail_removed.size();
    scan_into(tail, probed, queries, variants, radius, threads, level, hits);
  }
  if (stats) *stats = total;
  return hamming::merge_hits(hits, nq, variants);
}

}  // namespace mih
}  // namespace ncii
