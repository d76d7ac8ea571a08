// PDQ downsample kernel, 4 float lanes (portable vector code: SSE2 / NEON).
#define NCII_PDQ_NS kernel_scalar
#define NCII_PDQ_LANES 4
#include "pdq_kernel.inc"
