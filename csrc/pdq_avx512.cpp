// PDQ downsample kernel, 16 float lanes, built with -mavx512f.
#define NCII_PDQ_NS kernel_avx512
#define NCII_PDQ_LANES 16
#include "pdq_kernel.inc"
