// Search drivers: thread pool, blocking, result sinks and merging (portable flags).
//
// Blocking: the bank is cut into blocks of kBlockRows codes (128 KiB, fits in L2). Workers take
// blocks from a shared counter and run every query against a block, kQueryChunk queries at a
// time, before moving on, so a batch reads the bank from memory once in total. Each worker
// collects hits in its own sink; the calling thread merges them after the join, which makes
// the output independent of the thread count and of the order in which blocks were taken.
#include "hamming.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

#include "hamming_kernels.h"
#include "parallel.h"

namespace ncii {
namespace hamming {
namespace {

using detail::HitSink;
using detail::ScanArgs;
using ScanFn = void (*)(const ScanArgs&);

constexpr std::size_t kBlockRows = 4096;
constexpr std::size_t kQueryChunk = 512;
// Below this many (row, query) pairs per thread, starting a thread costs more than it saves.
constexpr std::size_t kMinPairsPerThread = std::size_t{1} << 18;
constexpr int kMaxThreads = 1024;

ScanFn pick_kernel(SimdLevel level) {
#if defined(NCII_HAVE_X86_KERNELS)
  if (level == SimdLevel::AVX512) return detail::scan_avx512;
  if (level == SimdLevel::AVX2) return detail::scan_avx2;
#else
  (void)level;
#endif
  return detail::scan_scalar;
}

std::vector<uint64_t> query_words(const uint8_t* queries, std::size_t count) {
  std::vector<uint64_t> words(count * 4);
  if (count) std::memcpy(words.data(), queries, count * kCodeBytes);
  return words;
}

void check_bank(const Bank& bank) {
  if (bank.n && !bank.codes) throw std::invalid_argument("bank codes must not be null");
  if (bank.n_removed && !bank.removed_rows) throw std::invalid_argument("removed rows must not be null");
  for (std::size_t i = 1; i < bank.n_removed; ++i)
    if (bank.removed_rows[i] <= bank.removed_rows[i - 1])
      throw std::invalid_argument("removed rows must be sorted ascending without duplicates");
}

class SinkBase : public HitSink {
 public:
  SinkBase(const Bank& bank, std::size_t nq, int32_t threshold) : bank_(bank), thresholds(nq, threshold) {}
  std::vector<int32_t> thresholds;

 protected:
  ~SinkBase() = default;
  bool removed(std::size_t row) const {
    return bank_.n_removed &&
           std::binary_search(bank_.removed_rows, bank_.removed_rows + bank_.n_removed,
                              static_cast<int64_t>(row));
  }
  int64_t id_of(std::size_t row) const { return bank_.ids ? bank_.ids[row] : static_cast<int64_t>(row); }
  const Bank& bank_;
};

struct RawHit {
  int64_t id;
  uint32_t query;  // index into the flattened variants
  int32_t distance;
};

class RangeSink final : public SinkBase {
 public:
  using SinkBase::SinkBase;
  void hit(std::size_t query, std::size_t row, int distance) override {
    if (removed(row)) return;
    hits.push_back(RawHit{id_of(row), static_cast<uint32_t>(query), distance});
  }
  std::vector<RawHit> hits;
};

struct Neighbor {
  int32_t distance;
  int64_t id;
  bool operator<(const Neighbor& o) const { return std::tie(distance, id) < std::tie(o.distance, o.id); }
};

// One bounded max-heap of (distance, id) per query; the threshold of a full heap is its top.
class KnnSink final : public SinkBase {
 public:
  KnnSink(const Bank& bank, std::size_t nq, std::size_t k)
      : SinkBase(bank, nq, kCodeBits), k_(k), heap(nq * k), size(nq, 0) {}
  void hit(std::size_t query, std::size_t row, int distance) override {
    if (removed(row)) return;
    const Neighbor cand{distance, id_of(row)};
    Neighbor* h = heap.data() + query * k_;
    std::size_t& n = size[query];
    if (n < k_) {
      h[n++] = cand;
      std::push_heap(h, h + n);
      if (n == k_) thresholds[query] = h[0].distance;
    } else if (cand < h[0]) {
      std::pop_heap(h, h + k_);
      h[k_ - 1] = cand;
      std::push_heap(h, h + k_);
      thresholds[query] = h[0].distance;
    }
  }
  std::size_t k_;
  std::vector<Neighbor> heap;
  std::vector<std::size_t> size;
};

std::size_t plan_threads(int threads, std::size_t n, std::size_t nq) {
  const std::size_t want = static_cast<std::size_t>(resolve_threads(threads));
  const std::size_t blocks = (n + kBlockRows - 1) / kBlockRows;
  const std::size_t by_work = n * nq / kMinPairsPerThread;
  return std::max<std::size_t>(1, std::min({want, blocks, by_work}));
}

template <class Sink>
void scan_bank(const Bank& bank, const uint64_t* words, std::size_t nq, SimdLevel level,
               std::vector<Sink>& sinks) {
  const ScanFn scan = pick_kernel(level);
  const std::size_t nblocks = (bank.n + kBlockRows - 1) / kBlockRows;
  std::atomic<std::size_t> next{0};
  run_parallel(sinks.size(), [&](std::size_t t) {
    Sink& sink = sinks[t];
    for (;;) {
      const std::size_t b = next.fetch_add(1, std::memory_order_relaxed);
      if (b >= nblocks) break;
      const std::size_t r0 = b * kBlockRows;
      const std::size_t r1 = std::min(bank.n, r0 + kBlockRows);
      for (std::size_t q0 = 0; q0 < nq; q0 += kQueryChunk) {
        const ScanArgs args{bank.codes, r0, r1, words, q0, std::min(nq, q0 + kQueryChunk),
                            sink.thresholds.data(), &sink};
        scan(args);
      }
    }
  });
}

}  // namespace

int resolve_threads(int threads) {
  if (threads <= 0) {
    // Asked once: glibc answers by reading /sys (tens of microseconds in a VM), which a
    // single-query search paid on every call.
    static const unsigned hw = std::thread::hardware_concurrency();
    threads = hw ? static_cast<int>(hw) : 1;
  }
  return std::min(threads, kMaxThreads);
}

uint64_t xor_fold(const uint8_t* data, std::size_t bytes, int threads) {
  if (bytes % 8) throw std::invalid_argument("xor_fold needs a multiple of 8 bytes");
  const std::size_t words = bytes / 8;
  const std::size_t nthreads = std::max<std::size_t>(
      1, std::min<std::size_t>(static_cast<std::size_t>(resolve_threads(threads)), words / 4096));
  std::vector<uint64_t> partial(nthreads * 8, 0);  // a cache line per thread
  run_parallel(nthreads, [&](std::size_t t) {
    const std::size_t begin = words * t / nthreads, end = words * (t + 1) / nthreads;
    uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = begin;
    for (; i + 8 <= end; i += 8) {
      uint64_t w[8];
      std::memcpy(w, data + i * 8, sizeof w);
      for (int j = 0; j < 8; ++j) acc[j] ^= w[j];
    }
    for (; i < end; ++i) {
      uint64_t w;
      std::memcpy(&w, data + i * 8, 8);
      acc[0] ^= w;
    }
    for (int j = 0; j < 8; ++j) partial[t * 8] ^= acc[j];
  });
  uint64_t out = 0;
  for (std::size_t t = 0; t < nthreads; ++t) out ^= partial[t * 8];
  return out;
}

RangeHits range_search(const Bank& bank, const uint8_t* queries, std::size_t nq, int variants,
                       int radius, int threads, SimdLevel level) {
  if (radius < 0 || radius > kCodeBits)
    throw std::invalid_argument("radius must be between 0 and 256, got " + std::to_string(radius));
  if (variants < 1 || variants > 127)
    throw std::invalid_argument("variants per query must be between 1 and 127, got " + std::to_string(variants));
  check_bank(bank);
  const std::size_t nflat = nq * static_cast<std::size_t>(variants);
  if (nflat > UINT32_MAX) throw std::invalid_argument("too many queries in one call (split the batch)");
  if (nflat && !queries) throw std::invalid_argument("queries must not be null");

  if (nflat == 0 || bank.n == 0) {
    RangeHits out;
    out.lims.assign(nq + 1, 0);
    return out;
  }

  const std::vector<uint64_t> words = query_words(queries, nflat);
  std::vector<RangeSink> sinks;
  const std::size_t nthreads = plan_threads(threads, bank.n, nflat);
  sinks.reserve(nthreads);
  for (std::size_t t = 0; t < nthreads; ++t) sinks.emplace_back(bank, nflat, radius);
  scan_bank(bank, words.data(), nflat, level, sinks);

  std::size_t total = 0;
  for (const auto& s : sinks) total += s.hits.size();
  std::vector<Hit> hits;
  hits.reserve(total);
  for (auto& s : sinks) {
    for (const RawHit& h : s.hits)
      hits.push_back(Hit{h.query / static_cast<std::size_t>(variants), h.id, h.distance,
                         static_cast<int8_t>(h.query % static_cast<std::size_t>(variants))});
    std::vector<RawHit>().swap(s.hits);
  }
  return merge_hits(hits, nq, variants);
}

RangeHits merge_hits(std::vector<Hit>& hits, std::size_t nq, int variants) {
  RangeHits out;
  out.lims.assign(nq + 1, 0);
  if (variants > 1) {
    // One hit per (query, id): the smallest distance, then the lowest variant.
    std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
      return std::tie(a.query, a.id, a.distance, a.variant) < std::tie(b.query, b.id, b.distance, b.variant);
    });
    hits.erase(std::unique(hits.begin(), hits.end(),
                           [](const Hit& a, const Hit& b) { return a.query == b.query && a.id == b.id; }),
               hits.end());
  }
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return std::tie(a.query, a.distance, a.id) < std::tie(b.query, b.distance, b.id);
  });
  out.ids.resize(hits.size());
  out.distances.resize(hits.size());
  if (variants > 1) out.variants.resize(hits.size());
  for (std::size_t i = 0; i < hits.size(); ++i) {
    out.ids[i] = hits[i].id;
    out.distances[i] = hits[i].distance;
    if (variants > 1) out.variants[i] = hits[i].variant;
    ++out.lims[hits[i].query + 1];
  }
  for (std::size_t q = 0; q < nq; ++q) out.lims[q + 1] += out.lims[q];
  return out;
}

void knn_search(const Bank& bank, const uint8_t* queries, std::size_t nq, int k, int threads,
                SimdLevel level, int64_t* out_ids, int32_t* out_distances) {
  if (k < 1) throw std::invalid_argument("k must be at least 1, got " + std::to_string(k));
  check_bank(bank);
  if (nq > UINT32_MAX) throw std::invalid_argument("too many queries in one call (split the batch)");
  const std::size_t kk = static_cast<std::size_t>(k);
  std::fill(out_ids, out_ids + nq * kk, kMissingId);
  std::fill(out_distances, out_distances + nq * kk, kMissingDistance);
  if (nq == 0 || bank.n == 0) return;
  // No query can have more than n neighbours: keep the heaps no larger than the bank.
  const std::size_t kh = std::min(kk, bank.n);

  const std::vector<uint64_t> words = query_words(queries, nq);
  std::vector<KnnSink> sinks;
  const std::size_t nthreads = plan_threads(threads, bank.n, nq);
  sinks.reserve(nthreads);
  for (std::size_t t = 0; t < nthreads; ++t) sinks.emplace_back(bank, nq, kh);
  scan_bank(bank, words.data(), nq, level, sinks);

  std::vector<Neighbor> merged;
  for (std::size_t q = 0; q < nq; ++q) {
    merged.clear();
    for (const auto& s : sinks)
      merged.insert(merged.end(), s.heap.begin() + q * kh, s.heap.begin() + q * kh + s.size[q]);
    std::sort(merged.begin(), merged.end());
    const std::size_t m = std::min(kh, merged.size());
    for (std::size_t i = 0; i < m; ++i) {
      out_ids[q * kk + i] = merged[i].id;
      out_distances[q * kk + i] = merged[i].distance;
    }
  }
}

}  // namespace hamming
}  // namespace ncii
