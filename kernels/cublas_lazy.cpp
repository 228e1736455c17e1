// cuBLAS and cuBLASLt, loaded on first use instead of at program start (kernels/lazy_library.h
// says why: measured 220 MB of resident memory and a slower start for `ckpt rechunk`, which never
// touches a GPU, when they were linked). A missing library makes every call fail with
// CUBLAS_STATUS_NOT_INITIALIZED, which callers already report, and cublasGetStatusString says why.
#include <cublasLt.h>
#include <cublas_v2.h>

#include "lazy_library.h"

namespace {

ckpt::cuda::LazyLibrary g_cublas{"libcublas", CUBLAS_VER_MAJOR};
ckpt::cuda::LazyLibrary g_cublas_lt{"libcublasLt", CUBLAS_VER_MAJOR};

}  // namespace

#define CKPT_CUBLAS_FORWARD(lib, name, params, args) \
  CKPT_LAZY_FORWARD(cublasStatus_t, CUBLAS_STATUS_NOT_INITIALIZED, lib, name, params, args)

CKPT_CUBLAS_FORWARD(g_cublas, cublasCreate_v2, (cublasHandle_t * handle), (handle))
CKPT_CUBLAS_FORWARD(g_cublas, cublasDestroy_v2, (cublasHandle_t handle), (handle))
CKPT_CUBLAS_FORWARD(g_cublas, cublasSetStream_v2, (cublasHandle_t handle, cudaStream_t stream), (handle, stream))
CKPT_CUBLAS_FORWARD(g_cublas, cublasSetWorkspace_v2, (cublasHandle_t handle, void* workspace, size_t bytes),
                    (handle, workspace, bytes))
CKPT_CUBLAS_FORWARD(g_cublas, cublasDgemm_v2,
                    (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                     const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta,
                     double* C, int ldc),
                    (handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc))
CKPT_CUBLAS_FORWARD(g_cublas, cublasGemmEx,
                    (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                     const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype,
                     int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                     cublasComputeType_t computeType, cublasGemmAlgo_t algo),
                    (handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
                     computeType, algo))

CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtCreate, (cublasLtHandle_t * handle), (handle))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtDestroy, (cublasLtHandle_t handle), (handle))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmulDescCreate,
                    (cublasLtMatmulDesc_t * desc, cublasComputeType_t computeType, cudaDataType_t scaleType),
                    (desc, computeType, scaleType))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmulDescDestroy, (cublasLtMatmulDesc_t desc), (desc))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmulDescSetAttribute,
                    (cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void* buf, size_t size),
                    (desc, attr, buf, size))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatrixLayoutCreate,
                    (cublasLtMatrixLayout_t * layout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld),
                    (layout, type, rows, cols, ld))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatrixLayoutDestroy, (cublasLtMatrixLayout_t layout), (layout))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmulPreferenceCreate, (cublasLtMatmulPreference_t * pref), (pref))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmulPreferenceDestroy, (cublasLtMatmulPreference_t pref), (pref))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmulPreferenceSetAttribute,
                    (cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                     size_t size),
                    (pref, attr, buf, size))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmulAlgoGetHeuristic,
                    (cublasLtHandle_t handle, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t Adesc,
                     cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                     cublasLtMatmulPreference_t pref, int requested, cublasLtMatmulHeuristicResult_t results[],
                     int* returned),
                    (handle, op, Adesc, Bdesc, Cdesc, Ddesc, pref, requested, results, returned))
CKPT_CUBLAS_FORWARD(g_cublas_lt, cublasLtMatmul,
                    (cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                     cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                     const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                     const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes, cudaStream_t stream),
                    (handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo, workspace,
                     workspace_bytes, stream))

extern "C" const char* cublasGetStatusString(cublasStatus_t status) {
  using Fn = const char* (*)(cublasStatus_t);
  static Fn fn = reinterpret_cast<Fn>(g_cublas.resolve("cublasGetStatusString"));
  if (fn) return fn(status);
  if (!g_cublas.load_error().empty()) return g_cublas.load_error().c_str();
  if (!g_cublas_lt.load_error().empty()) return g_cublas_lt.load_error().c_str();
  return "cuBLAS is not available";
}
