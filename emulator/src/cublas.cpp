// The cuBLAS calls cudarc's Gemm makes, on the CPU: libcublas.so.13 for a machine without a GPU.
// Column-major, as cuBLAS is; 16-bit inputs are widened exactly, products accumulated in f32 (the
// CUBLAS_COMPUTE_32F contract), alpha and beta applied in f32, the output rounded once.
// The types are declared here with cuBLAS's values: the CUDA wheels this builds with carry no
// cuBLAS headers.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "yoco_emu/device.h"

namespace {

enum Status { SUCCESS = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, NOT_SUPPORTED = 15 };
enum Operation { OP_N = 0, OP_T = 1, OP_C = 2 };
enum DataType { R_32F = 0, R_64F = 1, R_16F = 2, R_16BF = 14 };

struct Handle {
    void* stream = nullptr;
};

float load(const void* base, int type, size_t i) {
    switch (type) {
        case R_32F: return static_cast<const float*>(base)[i];
        case R_16F: return __half2float(static_cast<const __half*>(base)[i]);
        case R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
        default: abort();
    }
}

void store(void* base, int type, size_t i, float v) {
    switch (type) {
        case R_32F: static_cast<float*>(base)[i] = v; break;
        case R_16F: static_cast<__half*>(base)[i] = __float2half_rn(v); break;
        case R_16BF: static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v); break;
        default: abort();
    }
}

bool known(int type) { return type == R_32F || type == R_16F || type == R_16BF; }

// C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C, column-major with leading dimensions.
int gemm(int transa, int transb, int m, int n, int k, float alpha, const void* a, int a_type, int lda, const void* b,
         int b_type, int ldb, float beta, void* c, int c_type, int ldc) {
    if (m < 0 || n < 0 || k < 0) return INVALID_VALUE;
    if (!known(a_type) || !known(b_type) || !known(c_type)) return NOT_SUPPORTED;
    if (transa == OP_C || transb == OP_C) return NOT_SUPPORTED;
    const int a_rows = transa == OP_N ? m : k;
    const int b_rows = transb == OP_N ? k : n;
    if (lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1)) return INVALID_VALUE;
    std::vector<float> a_row(static_cast<size_t>(k));
    for (int i = 0; i < m; ++i) {
        for (int p = 0; p < k; ++p) {
            const size_t idx = transa == OP_N ? static_cast<size_t>(p) * lda + i : static_cast<size_t>(i) * lda + p;
            a_row[p] = load(a, a_type, idx);
        }
        for (int j = 0; j < n; ++j) {
            float acc = 0.0f;
            for (int p = 0; p < k; ++p) {
                const size_t idx = transb == OP_N ? static_cast<size_t>(j) * ldb + p : static_cast<size_t>(p) * ldb + j;
                acc += a_row[p] * load(b, b_type, idx);
            }
            const size_t out = static_cast<size_t>(j) * ldc + i;
            const float previous = beta == 0.0f ? 0.0f : beta * load(c, c_type, out);  // beta 0: C is not read
            store(c, c_type, out, alpha * acc + previous);
        }
    }
    return SUCCESS;
}

size_t element_bytes(int type) { return type == R_32F ? 4 : 2; }

}  // namespace

extern "C" {

int cublasCreate_v2(void** handle) {
    *handle = new Handle();
    return SUCCESS;
}
int cublasDestroy_v2(void* handle) {
    delete static_cast<Handle*>(handle);
    return SUCCESS;
}
int cublasSetStream_v2(void* handle, void* stream) {
    static_cast<Handle*>(handle)->stream = stream;
    return SUCCESS;
}
int cublasSetMathMode(void*, int) { return SUCCESS; }
int cublasSetWorkspace_v2(void*, void*, size_t) { return SUCCESS; }

int cublasSgemm_v2(void*, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
                   const float* b, int ldb, const float* beta, float* c, int ldc) {
    return gemm(transa, transb, m, n, k, *alpha, a, R_32F, lda, b, R_32F, ldb, *beta, c, R_32F, ldc);
}

// alpha and beta are f32 for CUBLAS_COMPUTE_32F*, the only compute types cudarc asks for here.
int cublasGemmEx(void*, int transa, int transb, int m, int n, int k, const void* alpha, const void* a, int a_type, int lda,
                 const void* b, int b_type, int ldb, const void* beta, void* c, int c_type, int ldc, int, int) {
    return gemm(transa, transb, m, n, k, *static_cast<const float*>(alpha), a, a_type, lda, b, b_type, ldb,
                *static_cast<const float*>(beta), c, c_type, ldc);
}

int cublasGemmStridedBatchedEx(void*, int transa, int transb, int m, int n, int k, const void* alpha, const void* a,
                               int a_type, int lda, long long stride_a, const void* b, int b_type, int ldb, long long stride_b,
                               const void* beta, void* c, int c_type, int ldc, long long stride_c, int batch, int, int) {
    for (int i = 0; i < batch; ++i) {
        const int status = gemm(transa, transb, m, n, k, *static_cast<const float*>(alpha),
                                static_cast<const char*>(a) + i * stride_a * element_bytes(a_type), a_type, lda,
                                static_cast<const char*>(b) + i * stride_b * element_bytes(b_type), b_type, ldb,
                                *static_cast<const float*>(beta), static_cast<char*>(c) + i * stride_c * element_bytes(c_type),
                                c_type, ldc);
        if (status != SUCCESS) return status;
    }
    return SUCCESS;
}

int cublasSgemmStridedBatched(void* h, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
                              long long stride_a, const float* b, int ldb, long long stride_b, const float* beta, float* c,
                              int ldc, long long stride_c, int batch) {
    return cublasGemmStridedBatchedEx(h, transa, transb, m, n, k, alpha, a, R_32F, lda, stride_a, b, R_32F, ldb, stride_b, beta,
                                      c, R_32F, ldc, stride_c, batch, 0, 0);
}

const char* cublasGetStatusString(int status) { return status == SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_ERROR (emulator)"; }
const char* cublasGetStatusName(int status) { return cublasGetStatusString(status); }

}  // extern "C"
