/* Parameters of kernels/gated_retention.cu, shared with crates/gated-retention through bindgen.
 * Plain C. Layout: q, k, v, o [batch, seq, heads, dim] dense; log_decay [batch, seq, heads] f32;
 * state [batch, heads, dim, dim] f32, S[i][j] pairing key component i with value component j. */
#pragma once
#include <stdint.h>

/* Chunkwise prefill: tokens per chunk; value columns per CTA of the kernels that walk the chunks
 * (the sequential gret_chunkwise_<dtype>_d<D>_v<BV> and the parallel schedule's states pass
 * gret_states_<dtype>_d<D>_v<BV>), wide or narrow (the host takes the narrow one when its
 * D / 32 × heads × batch CTAs still fit one wave on the GPU, the wide one otherwise); threads per
 * CTA. */
#define GRET_CHUNK 64
#define GRET_BLOCK_V_WIDE 64
#define GRET_BLOCK_V_NARROW 32
#define GRET_THREADS 256
/* Value columns and threads per CTA of the parallel schedule's outputs pass
 * (gret_outputs_<dtype>_d<D>): a warp per 16 tokens of the chunk. */
#define GRET_OUTPUTS_BLOCK_V 64
#define GRET_OUTPUTS_THREADS 128
/* The parallel schedule's gate pass (gret_gates): threads per CTA, a warp per chunk; and the
 * floats of each chunk's gate record it writes: the gates' cumulative sums in the chunk as f32
 * high parts [GRET_CHUNK], low parts [GRET_CHUNK], then the key factors s·e^(b_last − b_t)
 * [GRET_CHUNK] and the query factors e^(b_t) [GRET_CHUNK]. */
#define GRET_GATES_THREADS 128
#define GRET_GATE_RECORD (4 * GRET_CHUNK)
/* Shared-memory row padding of the chunkwise kernels, in elements: the 16-bit rows (Q, K, V and
 * the rounded state) get 8 more (16 bytes), so that the 8 rows an ldmatrix reads fall on
 * different banks (see Strides in the .cu). Part of the layout the host sizes and the kernel
 * checks. */
#define GRET_PAD_16BIT 8
/* The most dynamic shared memory an sm_90 CTA can have (227 KiB): every layout fits under it. */
#define GRET_SMEM_LIMIT 232448
/* The chunkwise kernels take each log-decay as at least −GRET_GATE_FLOOR_MAGNITUDE, so that a
 * chunk's cumulative sum of gates stays finite (the decay is 0 in f32 either way): the CPU path's
 * GATE_FLOOR (crates/gated-retention/src/lib.rs), checked equal by the crate. */
#define GRET_GATE_FLOOR_MAGNITUDE 128
/* Decode step: value columns per CTA (one warp's width), threads per CTA. */
#define GRET_STEP_COLUMNS 32
#define GRET_STEP_THREADS 128

typedef struct GretChunkParams {
    const void* q;
    const void* k;
    const void* v;
    const float* log_decay;
    float* state; /* read as the incoming state, overwritten with the outgoing one */
    void* o;
    /* The parallel schedule's [batch, heads, chunks, dim, dim] buffer of each chunk's incoming
     * state in the storage type: written by the states pass, read by the outputs pass; unused
     * (may be null) by the sequential kernel. */
    void* chunk_states;
    /* The parallel schedule's [batch, heads, chunks, GRET_GATE_RECORD] f32 gate records: written
     * by the gate pass, read by the states and outputs passes; unused (may be null) by the
     * sequential kernel. */
    float* chunk_gates;
    int32_t batch;
    int32_t seq;
    int32_t heads;
    float scale; /* multiplies k */
    /* Dynamic shared memory the host allocated; the kernel checks it equals its own layout's
     * size (the *Layout structs in the .cu, smem_bytes in crates/gated-retention/src/cuda.rs). */
    int32_t smem_bytes;
} GretChunkParams;

typedef struct GretStepParams {
    const void* q; /* [batch, 1, heads, dim] */
    const void* k;
    const void* v;
    const float* log_decay; /* [batch, 1, heads] */
    float* state;           /* updated in place */
    void* o;
    int32_t batch;
    int32_t heads;
    float scale;
} GretStepParams;
