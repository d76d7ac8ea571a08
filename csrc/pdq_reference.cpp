// Plain-loop PDQ downsample: full-size float buffers, one pass at a time, exactly the
// operation order documented in pdq.h. Slow and obvious on purpose -- it is the oracle the
// SIMD kernels are tested against, and the documentation of the algorithm in code.
#include <vector>

#include "pdq.h"

namespace ncii {
namespace pdq {
namespace {

// One box pass over `length` samples spaced `stride` apart.
void box_1d(const float* in, float* out, int length, std::ptrdiff_t stride, int window) {
  const int half = (window + 2) / 2;
  const int lag = window - half + 1;
  float sum = 0.0f;
  int count = 0;
  // Step t adds sample t (if any), then subtracts sample t - window (if any); output
  // index t - (half - 1) is written once it exists.
  for (int t = 0; t < length + half - 1; ++t) {
    if (t < length) {
      sum += in[t * stride];
      ++count;
    }
    if (t - window >= 0) {
      sum -= in[(t - window) * stride];
      --count;
    }
    const int o = t - (half - 1);
    if (o >= 0) out[o * stride] = sum / static_cast<float>(count);
  }
  (void)lag;
}

}  // namespace

void downsample64_reference(const ImageView& im, float* out64) {
  check_view(im);
  const int rows = im.rows, cols = im.cols;
  std::vector<float> a(static_cast<size_t>(rows) * cols), b(a.size());
  for (int i = 0; i < rows; ++i) {
    if (im.luma) {
      const char* base = reinterpret_cast<const char*>(im.luma) + i * im.row_stride;
      for (int j = 0; j < cols; ++j)
        a[static_cast<size_t>(i) * cols + j] = *reinterpret_cast<const float*>(base + j * im.col_stride);
      continue;
    }
    const uint8_t* p = im.data + i * im.row_stride;
    for (int j = 0; j < cols; ++j) {
      const uint8_t* q = p + j * im.col_stride;
      if (im.channels == 1) {
        a[static_cast<size_t>(i) * cols + j] = static_cast<float>(q[0]);
      } else {
        const float cr = 0.299f, cg = 0.587f, cb = 0.114f;
        a[static_cast<size_t>(i) * cols + j] = cr * q[0] + cg * q[1] + cb * q[2];
      }
    }
  }
  const int w_row = (cols + 127) / 128, w_col = (rows + 127) / 128;
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < rows; ++i)
      box_1d(&a[static_cast<size_t>(i) * cols], &b[static_cast<size_t>(i) * cols], cols, 1, w_row);
    for (int j = 0; j < cols; ++j) box_1d(&b[j], &a[j], rows, cols, w_col);
  }
  int rp[64], cp[64];
  sample_positions(rows, rp);
  sample_positions(cols, cp);
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 64; ++j) out64[i * 64 + j] = a[static_cast<size_t>(rp[i]) * cols + cp[j]];
}

}  // namespace pdq
}  // namespace ncii
