// PDQ downsample kernel, 8 float lanes, built with -mavx2.
#define NCII_PDQ_NS kernel_avx2
#define NCII_PDQ_LANES 8
#include "pdq_kernel.inc"
