/* Parameters of kernels/rmsnorm.cu. Read by nvcc and, through bindgen, by crates/rmsnorm, so that
 * Rust and CUDA share this one definition. Plain C: no CUDA types. */
#pragma once
#include <stdint.h>

/* Threads per block of every RMSNorm kernel. The warp-per-row kernels handle
 * RMSNORM_THREADS / 32 rows per block; the block-per-row kernels one row per block. */
#define RMSNORM_THREADS 256
/* Rows at most this many bytes wide go to the warp-per-row kernels (≤ 8 packs of 16 B per lane).
 * A 768-wide f32 row (3 KiB) as a block would keep 192 threads busy with one pack each and 64
 * idle, ~18 KiB in flight per SM; as a warp, 6 packs per lane in two batches of loads. */
#define RMSNORM_WARP_MAX_ROW_BYTES 4096

/* y = x * rsqrt(mean(x^2) + eps) * weight, row by row over [rows, width] (dense, row-major).
 * Residual variant: h = x + residual (stored, rounded to the storage type), then y = RMSNorm(h). */
typedef struct RmsNormParams {
    const void* x;        /* [rows, width] */
    const void* residual; /* [rows, width]; residual kernels only */
    const void* weight;   /* [width] */
    void* y;              /* [rows, width] out */
    void* h;              /* [rows, width] out; residual kernels only */
    int64_t rows;
    int32_t width;
    float eps;
    /* 1 when width is a multiple of the 16-byte pack (16 / sizeof(element)) and every pointer is
     * 16-byte aligned, so rows can be read in packs; 0 otherwise (element by element). */
    int32_t vectorized;
} RmsNormParams;
