// PDQ: dispatch, DCT, quality metric, median threshold and the dihedral hashes.
// See pdq.h for the invariants (float order, bit order, byte order).
#include "pdq.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ncii {
namespace pdq {
namespace {

// DCT-II basis rows for frequencies 1..16 over 64 samples, as float:
// D[i][j] = float(float(sqrt(2/64)) * cos(pi/128 * (i+1) * (2j+1))), products in double.
struct DctMatrix {
  float d[16][64];   // row i = frequency i+1
  float dt[64][16];  // transpose, for the second product
  DctMatrix() {
    const double pi = 3.14159265358979323846;
    const float scale = static_cast<float>(std::sqrt(2.0 / 64.0));
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 64; ++j) {
        d[i][j] = static_cast<float>(scale * std::cos((pi / 2.0 / 64.0) * static_cast<double>(i + 1) *
                                                      static_cast<double>(2 * j + 1)));
        dt[j][i] = d[i][j];
      }
  }
};

const DctMatrix& dct_matrix() {
  static const DctMatrix m;
  return m;
}

// Lower median: the 128th smallest of the 256 coefficients.
float lower_median(const float* v) {
  float tmp[256];
  std::memcpy(tmp, v, sizeof(tmp));
  std::nth_element(tmp, tmp + 127, tmp + 256);
  return tmp[127];
}

void set_bits(const float* c, uint8_t* out) {
  const float median = lower_median(c);
  for (int word = 0; word < 16; ++word) {
    unsigned bits = 0;
    for (int j = 0; j < 16; ++j)
      if (c[word * 16 + j] > median) bits |= 1u << j;
    out[2 * (15 - word)] = static_cast<uint8_t>(bits >> 8);
    out[2 * (15 - word) + 1] = static_cast<uint8_t>(bits & 0xff);
  }
}

}  // namespace

void sample_positions(int n, int* out64) {
  for (int i = 0; i < 64; ++i) out64[i] = static_cast<int>(((i + 0.5) * n) / 64);
}

void check_view(const ImageView& im) {
  if (im.rows < 0 || im.cols < 0) throw std::invalid_argument("image dimensions must be non-negative");
  if (im.channels != 1 && im.channels < 3)
    throw std::invalid_argument("image must have 1 (grey) or at least 3 (RGB) channels, got " +
                                std::to_string(im.channels));
  if (im.rows > 0 && im.cols > 0 && im.data == nullptr && im.luma == nullptr) throw std::invalid_argument("image data is null");
}

void dct64_to_16(const float* a, float* out) {
  const DctMatrix& m = dct_matrix();
  // T = D A: T[i][j] = sum_k D[i][k] A[k][j], k ascending, float accumulation from 0.
  float t[16][64];
  for (int i = 0; i < 16; ++i) {
    float acc[64];
    for (int j = 0; j < 64; ++j) acc[j] = 0.0f;
    for (int k = 0; k < 64; ++k) {
      const float dik = m.d[i][k];
      const float* row = a + k * 64;
      for (int j = 0; j < 64; ++j) acc[j] += dik * row[j];
    }
    std::memcpy(t[i], acc, sizeof(acc));
  }
  // B = T D^T: B[i][j] = sum_k T[i][k] D[j][k], k ascending.
  for (int i = 0; i < 16; ++i) {
    float acc[16];
    for (int j = 0; j < 16; ++j) acc[j] = 0.0f;
    for (int k = 0; k < 64; ++k) {
      const float tik = t[i][k];
      for (int j = 0; j < 16; ++j) acc[j] += tik * m.dt[k][j];
    }
    std::memcpy(out + i * 16, acc, sizeof(acc));
  }
}

int quality_from_64(const float* b) {
  // Count significant gradients: |int(((u - v) * 100) / 255)| between vertical, then
  // horizontal, neighbours; quality = sum / 90, capped at 100.
  int gradient_sum = 0;
  for (int i = 0; i < 63; ++i)
    for (int j = 0; j < 64; ++j) {
      const float u = b[i * 64 + j], v = b[(i + 1) * 64 + j];
      const int d = static_cast<int>(((u - v) * 100.0f) / 255.0f);
      gradient_sum += std::abs(d);
    }
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 63; ++j) {
      const float u = b[i * 64 + j], v = b[i * 64 + j + 1];
      const int d = static_cast<int>(((u - v) * 100.0f) / 255.0f);
      gradient_sum += std::abs(d);
    }
  return std::min(gradient_sum / 90, 100);
}

void bits_from_dct(const float* c, uint8_t* out32) { set_bits(c, out32); }

void dihedral_bits_from_dct(const float* a, uint8_t* out) {
  // The 8 dihedral transforms of the image act on the DCT as sign flips (odd frequencies
  // change sign under a mirror) and a transpose (for the rotations by 90/270 and the
  // diagonal flips). Index (i, j) = (vertical, horizontal) frequency.
  float b[256];
  auto emit = [&](int slot) { set_bits(b, out + slot * kHashBytes); };
  set_bits(a, out);  // original
  for (int i = 0; i < 16; ++i)  // rot90
    for (int j = 0; j < 16; ++j) b[j * 16 + i] = (j & 1) ? a[i * 16 + j] : -a[i * 16 + j];
  emit(1);
  for (int i = 0; i < 16; ++i)  // rot180
    for (int j = 0; j < 16; ++j) b[i * 16 + j] = ((i + j) & 1) ? -a[i * 16 + j] : a[i * 16 + j];
  emit(2);
  for (int i = 0; i < 16; ++i)  // rot270
    for (int j = 0; j < 16; ++j) b[j * 16 + i] = (i & 1) ? a[i * 16 + j] : -a[i * 16 + j];
  emit(3);
  for (int i = 0; i < 16; ++i)  // flipX
    for (int j = 0; j < 16; ++j) b[i * 16 + j] = (i & 1) ? a[i * 16 + j] : -a[i * 16 + j];
  emit(4);
  for (int i = 0; i < 16; ++i)  // flipY
    for (int j = 0; j < 16; ++j) b[i * 16 + j] = (j & 1) ? a[i * 16 + j] : -a[i * 16 + j];
  emit(5);
  for (int i = 0; i < 16; ++i)  // flipPlus1 (transpose)
    for (int j = 0; j < 16; ++j) b[j * 16 + i] = a[i * 16 + j];
  emit(6);
  for (int i = 0; i < 16; ++i)  // flipMinus1
    for (int j = 0; j < 16; ++j) b[j * 16 + i] = ((i + j) & 1) ? -a[i * 16 + j] : a[i * 16 + j];
  emit(7);
}

void downsample64(const ImageView& im, float* out64, SimdLevel level) {
  check_view(im);
  if (im.rows < kMinDimension || im.cols < kMinDimension)
    throw std::invalid_argument("image is smaller than 5x5; PDQ has no downsample for it");
#if defined(NCII_HAVE_X86_KERNELS)
  if (level == SimdLevel::AVX512) return kernel_avx512::downsample64(im, out64);
  if (level == SimdLevel::AVX2) return kernel_avx2::downsample64(im, out64);
#endif
  (void)level;
  kernel_scalar::downsample64(im, out64);
}

namespace {

bool is_own_downsample(const ImageView& im) { return im.rows == 64 && im.cols == 64; }

// The luma of a 64x64 image, unfiltered (the reference's single-hash path uses it as the
// downsample); the float expression of pdq.h.
void luma64(const ImageView& im, float* out64x64) {
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 64; ++j) {
      if (im.luma) {
        out64x64[i * 64 + j] = *reinterpret_cast<const float*>(reinterpret_cast<const char*>(im.luma) +
                                                               i * im.row_stride + j * im.col_stride);
        continue;
      }
      const uint8_t* q = im.data + i * im.row_stride + j * im.col_stride;
      out64x64[i * 64 + j] = im.channels == 1 ? static_cast<float>(q[0])
                                              : 0.299f * q[0] + 0.587f * q[1] + 0.114f * q[2];
    }
}

int hash_common(const ImageView& im, bool dihedral, uint8_t* out, bool reference, SimdLevel level) {
  check_view(im);
  const int nbytes = dihedral ? kNumDihedral * kHashBytes : kHashBytes;
  if (im.rows < kMinDimension || im.cols < kMinDimension) {
    std::memset(out, 0, nbytes);
    return 0;
  }
  float buf[64 * 64];
  if (!dihedral && is_own_downsample(im)) {
    // The reference's single-hash path takes a 64x64 image as its own downsample (no
    // filter pass); its dihedral path filters like at every other size. Reproduce both.
    luma64(im, buf);
  } else {
    downsample64_image(im, buf, reference, level);
  }
  const int quality = quality_from_64(buf);
  float dct[256];
  dct64_to_16(buf, dct);
  if (dihedral) {
    dihedral_bits_from_dct(dct, out);
  } else {
    bits_from_dct(dct, out);
  }
  return quality;
}

}  // namespace

void downsample64_image(const ImageView& im, float* out64x64, bool reference, SimdLevel level) {
  if (im.rows < kMinDimension || im.cols < kMinDimension)
    throw std::invalid_argument("image must be at least 5x5 pixels");
  if (reference)
    downsample64_reference(im, out64x64);
  else
    downsample64(im, out64x64, level);
}

int hash(const ImageView& im, bool dihedral, uint8_t* out, SimdLevel level) {
  return hash_common(im, dihedral, out, false, level);
}

int hash_reference(const ImageView& im, bool dihedral, uint8_t* out) {
  return hash_common(im, dihedral, out, true, SimdLevel::Scalar);
}

int hash_image(const ImageView& im, uint8_t* out32, uint8_t* dihedral8x32, bool reference, SimdLevel level) {
  if (dihedral8x32 == nullptr) return hash_common(im, false, out32, reference, level);
  const int quality = hash_common(im, true, dihedral8x32, reference, level);
  // At 64x64 the single hash (and its quality) comes from the unfiltered path, so it is not
  // the first dihedral hash; everywhere else it is.
  if (is_own_downsample(im)) return hash_common(im, false, out32, reference, level);
  std::memcpy(out32, dihedral8x32, kHashBytes);
  return quality;
}

}  // namespace pdq
}  // namespace ncii
