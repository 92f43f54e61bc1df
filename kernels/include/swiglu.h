/* Parameters of kernels/swiglu.cu, shared with crates/swiglu through bindgen. Plain C. */
#pragma once
#include <stdint.h>

#define SWIGLU_THREADS 256

/* out = silu(gate) * up, elementwise over n elements (dense), silu in f32. */
typedef struct SiluMulParams {
    const void* gate; /* [n] */
    const void* up;   /* [n] */
    void* out;        /* [n] out */
    int64_t n;
    /* 1 when n is a multiple of the 16-byte pack and every pointer is 16-byte aligned. */
    int32_t vectorized;
} SiluMulParams;
