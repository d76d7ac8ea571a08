#include "features_index.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <thread>

#include "simd.h"

namespace ncii::features {

namespace {

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// The body of the vote loop, inlined into a portable and a POPCNT-enabled wrapper.
struct Vote {
  uint32_t image;
  uint8_t rotation;  // (angle_bank - angle_query) mod 256
  uint8_t level;     // octave_bank - octave_query + 7, in 0..14
};

struct Shard {
  std::vector<Vote> votes;
  std::vector<uint16_t> plain;   // per image: distinct query features that voted
  std::vector<int32_t> last;     // per image: last query feature that voted (dedupe)
  std::size_t touched = 0;
};

template <bool kHwPopcnt>
inline __attribute__((always_inline)) int distance32(const uint8_t* a, const uint8_t* b) {
  int d = 0;
  for (int w = 0; w < 4; ++w) d += __builtin_popcountll(load64(a + 8 * w) ^ load64(b + 8 * w));
  return d;
}

struct VoteJob {
  const Query* q;
  const uint8_t* records;
  const uint8_t* removed;
  const uint16_t* positions;
  int n_tables;
  int key_bits;
  const uint32_t* offsets;
  const uint32_t* postings;
  std::size_t n_postings;
  const VoteParams* params;
};

template <bool kHwPopcnt>
inline __attribute__((always_inline)) void vote_range_body(const VoteJob& job, std::size_t f0, std::size_t f1,
                                                           Shard& shard) {
  const std::size_t nbuckets = std::size_t{1} << job.key_bits;
  const int maxd = job.params->max_distance;
  for (std::size_t f = f0; f < f1; ++f) {
    const uint8_t* qd = job.q->desc + 32 * f;
    const uint8_t qa = job.q->angle[f];
    const uint8_t qo = job.q->octave[f];
    for (int t = 0; t < job.n_tables; ++t) {
      const uint32_t key = bucket_key(qd, job.positions + static_cast<std::size_t>(t) * job.key_bits, job.key_bits);
      const uint32_t* off = job.offsets + static_cast<std::size_t>(t) * (nbuckets + 1);
      const std::size_t lo = off[key], hi = off[key + 1];
      if (job.params->max_bucket && hi - lo > job.params->max_bucket) continue;
      const uint32_t* post = job.postings + static_cast<std::size_t>(t) * job.n_postings;
      shard.touched += hi - lo;
      for (std::size_t k = lo; k < hi; ++k) {
        const uint32_t slot = post[k];
        const uint32_t image = slot / static_cast<uint32_t>(kSlots);
        if (job.removed && job.removed[image]) continue;
        if (shard.last[image] == static_cast<int32_t>(f)) continue;
        const uint8_t* rec = job.records + static_cast<std::size_t>(slot) * kRecordBytes;
        if (distance32<kHwPopcnt>(qd, rec + kDescOffset) > maxd) continue;
        shard.last[image] = static_cast<int32_t>(f);
        ++shard.plain[image];
        const int level = std::clamp(static_cast<int>(rec[5]) - static_cast<int>(qo) + 7, 0, 14);
        shard.votes.push_back(Vote{image, static_cast<uint8_t>(rec[4] - qa), static_cast<uint8_t>(level)});
      }
    }
  }
}

void vote_range_portable(const VoteJob& job, std::size_t f0, std::size_t f1, Shard& shard) {
  vote_range_body<false>(job, f0, f1, shard);
}

#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("popcnt"))) void vote_range_popcnt(const VoteJob& job, std::size_t f0, std::size_t f1,
                                                          Shard& shard) {
  vote_range_body<true>(job, f0, f1, shard);
}
#endif

}  // namespace

uint32_t bucket_key(const uint8_t* desc, const uint16_t* positions, int key_bits) {
  uint32_t key = 0;
  for (int j = 0; j < key_bits; ++j) {
    const unsigned p = positions[j];
    key |= static_cast<uint32_t>((desc[p >> 3] >> (p & 7)) & 1u) << j;
  }
  return key;
}

void build_tables(const uint8_t* records, const uint16_t* counts, std::size_t n_images,
                  const uint16_t* bit_positions, int n_tables, int key_bits, Tables& out) {
  if (key_bits < 1 || key_bits > kMaxKeyBits) throw std::invalid_argument("key_bits must be 1..30");
  if (n_tables < 1 || n_tables > 16) throw std::invalid_argument("n_tables must be 1..16");
  if (n_images * kSlots > 0xFFFFFFFFull) throw std::invalid_argument("too many images for one segment");
  for (int i = 0; i < n_tables * key_bits; ++i)
    if (bit_positions[i] >= 256) throw std::invalid_argument("bit positions must be < 256");
  std::size_t total = 0;
  for (std::size_t i = 0; i < n_images; ++i) {
    if (counts[i] > kSlots) throw std::invalid_argument("an image has more than 256 features");
    total += counts[i];
  }
  const std::size_t nb = std::size_t{1} << key_bits;
  out.n_tables = n_tables;
  out.key_bits = key_bits;
  out.bit_positions = bit_positions;
  out.n_postings = total;
  out.offsets.assign(static_cast<std::size_t>(n_tables) * (nb + 1), 0);
  out.postings.assign(static_cast<std::size_t>(n_tables) * total, 0);
  std::vector<uint32_t> keys(total);
  for (int t = 0; t < n_tables; ++t) {
    const uint16_t* pos = bit_positions + static_cast<std::size_t>(t) * key_bits;
    uint32_t* off = out.offsets.data() + static_cast<std::size_t>(t) * (nb + 1);
    std::size_t j = 0;
    for (std::size_t i = 0; i < n_images; ++i)
      for (std::size_t k = 0; k < counts[i]; ++k, ++j) {
        keys[j] = bucket_key(records + (i * kSlots + k) * kRecordBytes + kDescOffset, pos, key_bits);
        ++off[keys[j] + 1];
      }
    for (std::size_t b = 0; b < nb; ++b) off[b + 1] += off[b];
    std::vector<uint32_t> fill(off, off + nb);
    uint32_t* post = out.postings.data() + static_cast<std::size_t>(t) * total;
    j = 0;
    for (std::size_t i = 0; i < n_images; ++i)
      for (std::size_t k = 0; k < counts[i]; ++k, ++j)
        post[fill[keys[j]]++] = static_cast<uint32_t>(i * kSlots + k);
  }
}

Candidates vote(const Query& q, const uint8_t* records, std::size_t n_images, const uint8_t* removed,
                const uint16_t* bit_positions, int n_tables, int key_bits, const uint32_t* offsets,
                const uint32_t* postings, std::size_t n_postings, const VoteParams& params) {
  Candidates out;
  if (q.nq == 0 || n_images == 0) return out;
  const int min_score = std::max(1, params.min_score);
  const VoteJob job{&q, records, removed, bit_positions, n_tables, key_bits, offsets, postings, n_postings, &params};
  bool hw = false;
#if defined(__x86_64__) || defined(_M_X64)
  hw = active_simd_level() != SimdLevel::Scalar;  // AVX2 and up imply POPCNT (see simd.cpp)
#endif
  const std::size_t nthreads =
      std::max<std::size_t>(1, std::min<std::size_t>(static_cast<std::size_t>(std::max(1, params.threads)), q.nq / 16));
  std::vector<Shard> shards(nthreads);
  auto work = [&](std::size_t s) {
    Shard& sh = shards[s];
    sh.plain.assign(n_images, 0);
    sh.last.assign(n_images, -1);
    const std::size_t f0 = q.nq * s / nthreads, f1 = q.nq * (s + 1) / nthreads;
#if defined(__x86_64__) || defined(_M_X64)
    if (hw) {
      vote_range_popcnt(job, f0, f1, sh);
      return;
    }
#endif
    vote_range_portable(job, f0, f1, sh);
  };
  if (nthreads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (std::size_t s = 1; s < nthreads; ++s) pool.emplace_back(work, s);
    work(0);
    for (auto& th : pool) th.join();
  }
  // plain votes over all query features (each shard saw distinct features)
  std::vector<uint16_t>& plain = shards[0].plain;
  for (std::size_t s = 1; s < nthreads; ++s)
    for (std::size_t i = 0; i < n_images; ++i) plain[i] = static_cast<uint16_t>(plain[i] + shards[s].plain[i]);
  for (auto& sh : shards) out.touched += sh.touched;
  // Hough bins of the images that can still reach min_score: 16 rotation bins (soft: the
  // nearest two) x two interleaved binnings of the level difference in pairs of octaves.
  std::vector<uint64_t> keys;
  for (auto& sh : shards)
    for (const Vote& v : sh.votes) {
      if (plain[v.image] < min_score) continue;
      const unsigned r0 = v.rotation >> 4;
      const unsigned r1 = ((v.rotation & 15u) < 8u ? r0 + 15u : r0 + 1u) & 15u;
      const unsigned s0 = v.level >> 1, s1 = 8u + ((v.level + 1u) >> 1);
      const uint64_t base = static_cast<uint64_t>(v.image) << 8;
      keys.push_back(base | (s0 << 4) | r0);
      keys.push_back(base | (s0 << 4) | r1);
      keys.push_back(base | (s1 << 4) | r0);
      keys.push_back(base | (s1 << 4) | r1);
    }
  std::sort(keys.begin(), keys.end());
  std::vector<std::pair<int32_t, int64_t>> scored;  // (-score, image)
  for (std::size_t i = 0; i < keys.size();) {
    const uint64_t image = keys[i] >> 8;
    int32_t best = 0;
    while (i < keys.size() && (keys[i] >> 8) == image) {
      std::size_t j = i;
      while (j < keys.size() && keys[j] == keys[i]) ++j;
      best = std::max<int32_t>(best, static_cast<int32_t>(j - i));
      i = j;
    }
    if (best >= min_score) scored.emplace_back(-best, static_cast<int64_t>(image));
  }
  const std::size_t keep = std::min(params.top, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + keep, scored.end());
  for (std::size_t i = 0; i < keep; ++i) {
    out.image.push_back(scored[i].second);
    out.score.push_back(-scored[i].first);
    out.votes.push_back(plain[scored[i].second]);
  }
  return out;
}

std::vector<int64_t> anms(const float* xy, const float* response, std::size_t n, std::size_t keep) {
  std::vector<float> radius(n, std::numeric_limits<float>::infinity());
  for (std::size_t i = 1; i < n; ++i) {
    const float xi = xy[2 * i], yi = xy[2 * i + 1], ri = response[i];
    float best = std::numeric_limits<float>::infinity();
    for (std::size_t j = 0; j < i; ++j) {
      if (!(response[j] * 0.9f > ri)) continue;
      const float dx = xi - xy[2 * j], dy = yi - xy[2 * j + 1];
      const float dx2 = dx * dx, dy2 = dy * dy;
      const float d2 = dx2 + dy2;
      if (d2 < best) best = d2;
    }
    radius[i] = best;
  }
  std::vector<int64_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return radius[a] > radius[b]; });
  order.resize(std::min(keep, n));
  return order;
}

}  // namespace ncii::features
