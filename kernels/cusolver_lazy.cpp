// cuSOLVER (dense), loaded on first use like cuBLAS (kernels/lazy_library.h): the GPTQ solve
// (kernels/calib/gptq_device.cpp) factorises with it; nothing else in ckpt does, so no other
// command pays for loading it. CUDA 13 ships libcusolver.so.12: the soname comes from
// CUSOLVER_VER_MAJOR, not the toolkit's version. A missing library makes every call return
// CUSOLVER_STATUS_NOT_INITIALIZED; cusolver_load_error() says why.
#include <cusolverDn.h>

#include "lazy_library.h"

namespace {

ckpt::cuda::LazyLibrary g_cusolver{"libcusolver", CUSOLVER_VER_MAJOR};

}  // namespace

#define CKPT_CUSOLVER_FORWARD(name, params, args) \
  CKPT_LAZY_FORWARD(cusolverStatus_t, CUSOLVER_STATUS_NOT_INITIALIZED, g_cusolver, name, params, args)

CKPT_CUSOLVER_FORWARD(cusolverDnCreate, (cusolverDnHandle_t * handle), (handle))
CKPT_CUSOLVER_FORWARD(cusolverDnDestroy, (cusolverDnHandle_t handle), (handle))
CKPT_CUSOLVER_FORWARD(cusolverDnSetStream, (cusolverDnHandle_t handle, cudaStream_t stream), (handle, stream))
CKPT_CUSOLVER_FORWARD(cusolverDnSpotrf_bufferSize,
                      (cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, float* A, int lda, int* lwork),
                      (handle, uplo, n, A, lda, lwork))
CKPT_CUSOLVER_FORWARD(cusolverDnSpotrf,
                      (cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, float* A, int lda, float* work,
                       int lwork, int* info),
                      (handle, uplo, n, A, lda, work, lwork, info))
CKPT_CUSOLVER_FORWARD(cusolverDnSpotri_bufferSize,
                      (cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, float* A, int lda, int* lwork),
                      (handle, uplo, n, A, lda, lwork))
CKPT_CUSOLVER_FORWARD(cusolverDnSpotri,
                      (cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, float* A, int lda, float* work,
                       int lwork, int* info),
                      (handle, uplo, n, A, lda, work, lwork, info))

namespace ckpt::cuda {

const std::string& cusolver_load_error() { return g_cusolver.load_error(); }

}  // namespace ckpt::cuda
