/* Parameters of kernels/attention.cu. Read by nvcc and, through bindgen, by crates/gqa, so that
 * Rust and CUDA share this one definition. Plain C: no CUDA types. */
#pragma once
#include <stdint.h>

/* Masks (crates/gqa Mask). Query i sees key j iff lo(i) <= j < hi(i), with
 * hi(i) = i + kv_len - q_len + 1 (causal, bottom-right) and lo(i) = max(hi(i) - window, 0). */
#define ATTN_MASK_NONE 0
#define ATTN_MASK_CAUSAL 1
#define ATTN_MASK_WINDOW 2

/* Prefill (flash-attention-2 on tensor cores): 4 warps, each owning 16 of the 64 queries of a
 * program; one program per (query block, head, batch). */
#define ATTN_PREFILL_WARPS 4
#define ATTN_PREFILL_THREADS 128 /* 32 * ATTN_PREFILL_WARPS */
/* Other prefill entries for head dims 64 and 128, selected by YOCO_ATTN_PREFILL (crates/gqa
 * cuda.rs): wide, 8 warps of 16 queries (128 a program); tall, ATTN_PREFILL_WARPS warps of 32
 * queries (two 16-row m-tiles each, 128 a program), with 32-key tiles at D = 128. */
#define ATTN_PREFILL_WIDE_WARPS 8
#define ATTN_BLOCK_N_TALL_D128 32
/* A fourth, wgmma (sm_90a): 2 warpgroups of 64 queries (128 a program), 64-key tiles, the tiles
 * 128-byte swizzled from a 1024-byte boundary (ATTN_WGMMA_SMEM_ALIGN more bytes of shared memory
 * than the tiles take, for the kernel to align them). */
#define ATTN_PREFILL_WGMMA_WARPS 8
#define ATTN_WGMMA_SMEM_ALIGN 1024
/* Keys per tile: 64 for head dims 64 and 128, 32 for 256 (registers: the output accumulator
 * of a 256-wide head is already 128 per thread). */
#define ATTN_BLOCK_N_SMALL_D 64
#define ATTN_BLOCK_N_D256 32
/* Shared-memory row stride = head_dim + ATTN_SMEM_PAD elements: 16 bytes of padding put the
 * 8 rows of every ldmatrix in 8 different bank groups. */
#define ATTN_SMEM_PAD 8

/* Decode (split-KV, flash-decoding): one program per (split of the keys, K/V head, batch)
 * handling every query row that reads that K/V head, so K and V are read once; a combine
 * kernel merges the splits. At most ATTN_DECODE_MAX_ROWS rows (of the q_len * heads / kv_heads
 * that read a K/V head) per program. */
#define ATTN_DECODE_THREADS 128
#define ATTN_DECODE_MAX_ROWS 8
/* 9 to ATTN_DECODE_MMA_ROWS rows per K/V head go to the tensor-core decode instead (one program
 * per split, all rows one m16n8k16 fragment; ATTN_PREFILL_THREADS threads, 4 warps of 16 keys of
 * each tile of ATTN_DECODE_MMA_BLOCK_N keys), which writes the same partials. */
#define ATTN_DECODE_MMA_ROWS 16
#define ATTN_DECODE_MMA_BLOCK_N 64
#define ATTN_COMBINE_THREADS 128
/* Most splits of one decode call (the combine keeps one weight per split in shared memory). */
#define ATTN_DECODE_MAX_SPLITS 1024

/* One attention call. q, out: [batch, q_len, heads, head_dim]; k, v: [batch, kv_capacity,
 * kv_heads, head_dim] of which positions < kv_len are read (dense, row-major, 16-byte aligned). */
typedef struct AttentionParams {
    const void* q;
    const void* k;
    const void* v;
    void* out;
    /* Decode only: per split, the unnormalised output [batch, kv_heads, splits, rows, head_dim]
     * and its (max, sum) [batch, kv_heads, splits, rows, 2], both f32, max in log2 units. */
    float* partial_o;
    float* partial_ml;
    int64_t kv_batch_stride; /* kv_capacity * kv_heads * head_dim */
    int32_t batch;
    int32_t q_len;
    int32_t kv_len;
    int32_t heads;
    int32_t kv_heads;
    int32_t head_dim;
    int32_t group; /* heads / kv_heads */
    int32_t mask;  /* ATTN_MASK_* */
    int32_t window;
    float scale_log2; /* scale * log2(e): scores go to exp2 */
    float scale;      /* the scale itself, for the f64 recomputation of rows whose f32 arithmetic overflows */
    /* Decode only. Row r is query r / group of head kv_head * group + r % group. */
    int32_t rows;
    int32_t splits;
    int32_t keys_per_split;
    int32_t key_begin; /* the first key any row sees; split s starts at key_begin + s * keys_per_split */
} AttentionParams;
