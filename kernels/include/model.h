/* Parameters of kernels/model.cu, the root crate's own kernels (shared with src/model/cuda_ops.rs
 * through bindgen). Plain C. */
#pragma once
#include <stdint.h>

#define MODEL_THREADS 256

/* out[t, :] = scale * table[tokens[t], :] for t < n_tokens; table [vocab, width]. */
typedef struct EmbedParams {
    const void* table;
    const uint32_t* tokens;
    void* out;
    int64_t n_tokens;
    int32_t width;
    float scale;
} EmbedParams;

/* out[i] = logsigmoid(z[i]) / 16 in f32, for i < n: the gated-retention decay in log space. */
typedef struct LogDecayParams {
    const void* z;
    float* out;
    int64_t n;
} LogDecayParams;

/* Greedy sampling on the device: for each row r < rows of x [rows, width], out[2r] = the index of
 * its largest value (ties: the lowest index) and out[2r + 1] = how many of its values are NaN or
 * infinite (the host refuses such logits). One block per row. */
typedef struct ArgmaxParams {
    const void* x;
    uint32_t* out;
    int64_t rows;
    int32_t width;
} ArgmaxParams;
