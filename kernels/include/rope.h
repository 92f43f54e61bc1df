/* Parameters of kernels/rope.cu. Read by nvcc and, through bindgen, by crates/rope, so that Rust
 * and CUDA share this one definition. Plain C: no CUDA types. */
#pragma once
#include <stdint.h>

/* Threads per block of the RoPE kernel. */
#define ROPE_THREADS 256

/* The pairing of dimensions (crates/rope RopeVariant). */
#define ROPE_VARIANT_YOCO 0  /* interleaved pairs (x[2i], x[2i+1]) */
#define ROPE_VARIANT_LLAMA 1 /* rotate-half pairs (x[i], x[i + D/2]) */

/* out = RoPE(x) over [batch, seq, heads, head_dim] (dense, row-major); token n of every sequence
 * sits at position pos_offset + n. out may equal x (each thread reads its pair, then writes it). */
typedef struct RopeParams {
    const void* x;          /* [batch, seq, heads, head_dim] */
    void* out;              /* [batch, seq, heads, head_dim] out */
    const float* inv_freq;  /* [head_dim / 2], f32 (the host's table, so every path has the same angle) */
    int64_t pairs;          /* batch * seq * heads * head_dim / 2 */
    int32_t seq;
    int32_t heads;
    int32_t head_dim;
    int32_t variant;        /* ROPE_VARIANT_* */
    int64_t pos_offset;
} RopeParams;
