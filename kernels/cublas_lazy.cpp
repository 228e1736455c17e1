// cuBLAS and cuBLASLt, loaded on first use instead of at program start.
//
// Linking them normally makes the dynamic loader relocate libcublasLt (over 500 MB) when any
// subcommand starts: measured 220 MB of resident memory and a slower start for `ckpt rechunk`,
// which never touches a GPU. So the binary does not link them; it defines the few entry points
// ckpt uses, each of which resolves the real function with dlopen/dlsym the first time it is
// called. A missing library makes every call fail with CUBLAS_STATUS_NOT_INITIALIZED, which
// callers already report, and cublasGetStatusString says why.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <dlfcn.h>

#include <mutex>
#include <string>

namespace {

struct Library {
  const char* base;  // "libcublas"
  std::once_flag once;
  void* handle = nullptr;
};

Library g_cublas{"libcublas", {}, nullptr};
Library g_cublas_lt{"libcublasLt", {}, nullptr};
std::string g_load_error;

void* resolve(Library& lib, const char* symbol) {
  std::call_once(lib.once, [&] {
    // The soname carries the major version of the headers we were built against.
    std::string versioned = std::string(lib.base) + ".so." + std::to_string(CUBLAS_VER_MAJOR);
    lib.handle = dlopen(versioned.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib.handle) lib.handle = dlopen((std::string(lib.base) + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib.handle) g_load_error = "cannot load " + versioned + ": " + dlerror();
  });
  return lib.handle ? dlsym(lib.handle, symbol) : nullptr;
}

}  // namespace

// Defines `name` with the header's signature, forwarding to the library's own definition.
#define CKPT_CUBLAS_FORWARD(lib, name, params, args)                               \
  extern "C" cublasStatus_t name params {                                         \
    using Fn = cublasStatus_t(*) params;                                          \
    static Fn fn = reinterpret_cast<Fn>(resolve(lib, #name));                     \
    return fn ? fn args : CUBLAS_STATUS_NOT_INITIALIZED;                    \
  }

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
  static Fn fn = reinterpret_cast<Fn>(resolve(g_cublas, "cublasGetStatusString"));
  if (fn) return fn(status);
  return g_load_error.empty() ? "cuBLAS is not available" : g_load_error.c_str();
}
