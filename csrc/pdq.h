// PDQ perceptual hash (Meta's 256-bit image hash), bit-exact with the reference core.
//
// Invariants shared by every function here:
//  * Luma is float32: grey pixels are used as-is; RGB is 0.299f*R + 0.587f*G + 0.114f*B,
//    summed left to right, with no fused multiply-add (the translation units are built
//    with -ffp-contract=off).
//  * The 64x64 downsample is the Jarosz tent filter (box along rows, then along columns,
//    twice) with windows ceil(cols/128) and ceil(rows/128), edge windows shrinking, each
//    box a running float sum (add before subtract) divided by the live window size, then
//    sampled at ((i+0.5)*rows/64, (j+0.5)*cols/64). Every SIMD kernel runs the same
//    per-element float operations in the same order, one image row or column per lane,
//    so all levels give identical bits.
//  * Hash bits: bit k = i*16+j of the 16x16 DCT (frequencies 1..16) is set iff the
//    coefficient is strictly greater than the lower median (the 128th smallest of 256).
//    Bit k lives in 16-bit word k/16 at position k%16; the 32 output bytes are the words
//    from 15 down to 0, high byte first -- exactly bytes.fromhex(reference hex).
//  * Images with fewer than 5 rows or columns hash to all zeros with quality 0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "simd.h"

namespace ncii {
namespace pdq {

constexpr int kHashBytes = 32;
constexpr int kMinDimension = 5;
constexpr int kNumDihedral = 8;

// A borrowed view of 8-bit pixels. channels: 1 (grey) or >= 3 (R, G, B first; the rest,
// e.g. alpha, is ignored). Strides are in bytes. When `luma` is set, the view is of a
// precomputed float32 luma plane instead (channels 1, `data` unused), e.g. frames already
// converted by a video decoder or other PDQ ports that compute luma differently.
struct ImageView {
  const uint8_t* data;
  const float* luma = nullptr;
  int rows;
  int cols;
  int channels;
  std::ptrdiff_t row_stride;
  std::ptrdiff_t col_stride;
};

// The entry points of the Python binding (ncii_hash._core.pdq_hash / pdq_downsample64).
// `reference` selects the plain loops of pdq_reference.cpp (the test oracle) instead of the
// kernels of `level`; both give the same bits.
//
// Hashes one image as Meta's reference does: `out32` receives its hash and the return value
// is its quality 0..100; when `dihedral8x32` is not null it receives the 8 dihedral hashes
// (order as for hash() below). Everywhere but 64x64 the hash is dihedral8x32[0]. At exactly
// 64x64 the reference's single-hash path takes the image's luma as its own downsample
// (no filter pass) while its dihedral path filters, so there the hash and quality come from
// the unfiltered luma and the dihedral hashes from the filtered one. Images under 5x5 give
// zero hashes and quality 0. Throws std::invalid_argument for an impossible view.
int hash_image(const ImageView& image, uint8_t* out32, uint8_t* dihedral8x32, bool reference, SimdLevel level);

// The 64x64 downsample; throws std::invalid_argument for images under 5x5 pixels.
void downsample64_image(const ImageView& image, float* out64x64, bool reference, SimdLevel level);

// Hashes one image. `out` receives 32 bytes, or 8*32 bytes when `dihedral` is true (order:
// original, rot90, rot180, rot270, flipX, flipY, flipPlus1, flipMinus1). Returns the quality
// 0..100. At 64x64 a single hash (and its quality) uses the unfiltered luma, the dihedral
// hashes (and their quality) the filtered downsample; see hash_image. Throws
// std::invalid_argument for an impossible view. Thread-safe.
int hash(const ImageView& image, bool dihedral, uint8_t* out, SimdLevel level);

// The same contract, computed by the plain loops of pdq_reference.cpp (test oracle).
int hash_reference(const ImageView& image, bool dihedral, uint8_t* out);

// Intermediates, exposed for tests and tools.
void downsample64(const ImageView& image, float* out64x64, SimdLevel level);
void downsample64_reference(const ImageView& image, float* out64x64);
void dct64_to_16(const float* in64x64, float* out16x16);
int quality_from_64(const float* in64x64);
void bits_from_dct(const float* dct16x16, uint8_t* out32);
void dihedral_bits_from_dct(const float* dct16x16, uint8_t* out8x32);

// Decimation sample positions: (int)(((i + 0.5) * n) / 64) for i in 0..63.
void sample_positions(int n, int* out64);

// Validates a view; throws std::invalid_argument naming the problem.
void check_view(const ImageView& image);

namespace kernel_scalar {
void downsample64(const ImageView& image, float* out64x64);
}
namespace kernel_avx2 {
void downsample64(const ImageView& image, float* out64x64);
}
namespace kernel_avx512 {
void downsample64(const ImageView& image, float* out64x64);
}

}  // namespace pdq
}  // namespace ncii
