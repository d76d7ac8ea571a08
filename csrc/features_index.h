// Candidate search over local binary features (issue #8).
//
// A segment holds the features of n images in fixed slots: image i owns slots
// [i * kSlots, i * kSlots + count[i]), each slot one record of the serialized layout
// (x u16, y u16, angle u8, octave u8, 32 descriptor bytes: 38 bytes). For each of L tables,
// `kb` descriptor bits (positions fixed by the caller) form a bucket key; buckets are stored
// as CSR (offsets, postings = slot numbers).
//
// A query's features look up their bucket in every table; a bank feature found there counts
// only if its whole descriptor is within `max_distance` bits (random key collisions die
// here), and only once per (query feature, image). Each surviving vote carries the rotation
// and pyramid-level differences of the two keypoints; an image's score is the largest number
// of votes that agree on one (rotation, scale) bin -- a Hough vote in the similarity group,
// which keeps the votes of a true copy together and spreads chance agreements out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ncii::features {

constexpr std::size_t kSlots = 256;       // feature slots per image
constexpr std::size_t kRecordBytes = 38;  // x u16, y u16, angle u8, octave u8, desc[32]
constexpr std::size_t kDescOffset = 6;
constexpr int kMaxKeyBits = 30;

struct Tables {
  int n_tables = 0;
  int key_bits = 0;
  const uint16_t* bit_positions = nullptr;  // (n_tables, key_bits), each < 256
  std::vector<uint32_t> offsets;            // (n_tables, 2**key_bits + 1)
  std::vector<uint32_t> postings;           // (n_tables, n_postings)
  std::size_t n_postings = 0;
};

// Bucket key of one 32-byte descriptor for table t.
uint32_t bucket_key(const uint8_t* desc, const uint16_t* positions, int key_bits);

// Builds every table by counting sort over the valid slots (deterministic: postings of a
// bucket in slot order). Throws std::invalid_argument on bad sizes.
void build_tables(const uint8_t* records, const uint16_t* counts, std::size_t n_images,
                  const uint16_t* bit_positions, int n_tables, int key_bits, Tables& out);

struct Query {
  const uint8_t* desc = nullptr;    // (nq, 32)
  const uint8_t* angle = nullptr;   // (nq,) 256 units a turn
  const uint8_t* octave = nullptr;  // (nq,)
  std::size_t nq = 0;
};

struct VoteParams {
  int max_distance = 50;
  int min_score = 4;  // values below 1 count as 1
  std::size_t top = 32;
  std::size_t max_bucket = 0;  // skip buckets longer than this (0: no limit)
  int threads = 1;
};

struct Candidates {
  std::vector<int64_t> image;  // segment-local image numbers, best first
  std::vector<int32_t> score;  // Hough score
  std::vector<int32_t> votes;  // plain votes (distinct query features)
  std::size_t touched = 0;     // postings read (work measure)
};

// `offsets`/`postings` laid out as Tables; `removed` (n_images bytes, nonzero = gone) may be null.
Candidates vote(const Query& q, const uint8_t* records, std::size_t n_images, const uint8_t* removed,
                const uint16_t* bit_positions, int n_tables, int key_bits, const uint32_t* offsets,
                const uint32_t* postings, std::size_t n_postings, const VoteParams& params);

// Adaptive non-maximal suppression. `xy` (n, 2) and `response` (n,) are in decreasing
// response order; radius[i] = min squared distance to an earlier point j with
// response[j] * 0.9f > response[i] (infinity if none). Returns the `keep` indices of largest
// radius, ties in index order. float32 arithmetic throughout.
std::vector<int64_t> anms(const float* xy, const float* response, std::size_t n, std::size_t keep);

}  // namespace ncii::features
