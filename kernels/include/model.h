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
