// The PDQ core for WebAssembly: the same translation units as the native module (pdq.cpp,
// the portable 4-lane kernel), with a C ABI small enough to call from JavaScript without
// any generated glue. Built by wasm/build.sh twice: with -msimd128 (the 4-lane vectors become
// v128 operations) and without (the compiler lowers them to scalar float operations); both
// run the per-element float sequence documented in pdq.h, with -ffp-contract=off, so the
// bits equal the native core's.
//
// ABI (all pointers are offsets in the module's memory):
//   ncii_alloc(n) / ncii_free(p)       -- buffers for pixels and results
//   ncii_pdq(pixels, width, height, channels, out32, dihedral8x32)
//       channels: 1 (grey), 3 (RGB) or 4 (RGBA; alpha ignored); rows packed, no padding.
//       out32 receives the hash (32 bytes, high byte first, = bytes.fromhex(hex));
//       dihedral8x32, if not 0, the 8 dihedral hashes (original, rot90, rot180, rot270,
//       flipX, flipY, flipPlus1, flipMinus1). Returns the quality 0..100, or -1 for
//       arguments that are not an image (nothing is written then).
//   ncii_simd()                        -- 1 in the SIMD128 build, 0 in the scalar one
//   ncii_dct16(in64x64, out16x16)      -- the core's 64x64 -> 16x16 DCT on floats (tests: the DCT
//                                         matrix comes from the C library's cos, musl here)
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../pdq.h"

extern "C" {

__attribute__((export_name("ncii_alloc"))) void* ncii_alloc(std::size_t n) { return std::malloc(n ? n : 1); }

__attribute__((export_name("ncii_free"))) void ncii_free(void* p) { std::free(p); }

__attribute__((export_name("ncii_simd"))) int ncii_simd() {
#if defined(__wasm_simd128__)
  return 1;
#else
  return 0;
#endif
}

__attribute__((export_name("ncii_dct16"))) void ncii_dct16(const float* in64x64, float* out16x16) {
  ncii::pdq::dct64_to_16(in64x64, out16x16);
}

__attribute__((export_name("ncii_pdq"))) int ncii_pdq(const uint8_t* pixels, int width, int height, int channels,
                                                    uint8_t* out32, uint8_t* dihedral8x32) {
  // Checked here so that the core's checks (which throw) never fire: this build has no
  // exception support, and a throw would abort the module.
  if (out32 == nullptr || width < 0 || height < 0 || (channels != 1 && channels != 3 && channels != 4)) return -1;
  if (width > 0 && height > 0 && pixels == nullptr) return -1;
  if (static_cast<int64_t>(width) * channels > INT32_MAX) return -1;
  ncii::pdq::ImageView view{};
  view.data = pixels;
  view.rows = height;
  view.cols = width;
  view.channels = channels;
  view.col_stride = channels;
  view.row_stride = static_cast<std::ptrdiff_t>(width) * channels;
  return ncii::pdq::hash_image(view, out32, dihedral8x32, false, ncii::SimdLevel::Scalar);
}

}  // extern "C"
