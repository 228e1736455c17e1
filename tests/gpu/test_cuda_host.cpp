// The CUDA host-side mechanisms every GPU path shares (kernels/cuda_check.h): one error mapping,
// a device buffer that never trusts a stale capacity after a failed growth, the per-thread
// workspace of the element-wise ops, and a stream capture that a throw cannot leave open.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "core/error.h"
#include "cuda_check.h"
#include "gpu_info.h"

using namespace ckpt;
using namespace ckpt::cuda;

namespace {

bool have_gpu() { return device_count() > 0; }

constexpr size_t kImpossible = size_t{1} << 60;  // more than any GPU has

}  // namespace

// Needs no GPU: cudaGetErrorString/Name are host functions.
TEST(CudaCheck, AFailureIsOneIoErrorLineNamingTheCallAndTheError) {
  try {
    CKPT_CUDA(cudaErrorMemoryAllocation);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
    const std::string what = e.what();
    EXPECT_NE(what.find("CUDA error in cudaErrorMemoryAllocation: out of memory (cudaErrorMemoryAllocation)"),
              std::string::npos)
        << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_NE(what.find("[io]"), std::string::npos) << what;
  }
  EXPECT_NO_THROW(CKPT_CUDA(cudaSuccess));
  try {
    CKPT_CUBLAS(CUBLAS_STATUS_ALLOC_FAILED);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
    EXPECT_NE(std::string(e.what()).find("cuBLAS error in CUBLAS_STATUS_ALLOC_FAILED: "), std::string::npos) << e.what();
  }
}

// The FP8 engine's old workspace kept its capacity after a failed cudaMalloc and then handed out a
// null buffer as if it were large enough.
TEST(CudaHost, AFailedGrowthLeavesTheBufferEmptyAndTheNextReserveAllocates) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine";
  DeviceBuffer b(256);
  b.reserve(128);  // large enough: kept
  EXPECT_EQ(b.size(), 256u);
  try {
    b.reserve(kImpossible);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
  }
  cudaGetLastError();  // the failed cudaMalloc is not sticky; clear it anyway
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.data(), nullptr);
  b.reserve(64);
  EXPECT_EQ(b.size(), 64u);
  EXPECT_NE(b.data(), nullptr);
  CKPT_CUDA(cudaMemset(b.data(), 0, 64));
}

TEST(CudaHost, TheThreadWorkspaceRecoversFromAFailedGrowth) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine";
  ThreadWorkspace& w = ThreadWorkspace::mine();
  EXPECT_EQ(&w, &ThreadWorkspace::mine());
  EXPECT_THROW(w.buffer(3, kImpossible), Error);
  cudaGetLastError();
  void* p = w.buffer(3, 4096);
  ASSERT_NE(p, nullptr);
  CKPT_CUDA(cudaMemsetAsync(p, 1, 4096, w.stream()));
  CKPT_CUDA(cudaStreamSynchronize(w.stream()));
}

TEST(CudaHost, AThrowDuringCaptureEndsTheCapture) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU on this machine";
  const Stream stream = new_stream();
  DeviceBuffer b(1024);
  EXPECT_THROW(
      {
        CKPT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        CaptureGuard capturing(stream);
        CKPT_CUDA(cudaMemsetAsync(b.data(), 0, 1024, stream));
        throw std::runtime_error("a check failed while enqueueing");
      },
      std::runtime_error);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusActive;
  CKPT_CUDA(cudaStreamIsCapturing(stream, &status));
  EXPECT_EQ(status, cudaStreamCaptureStatusNone);
  // The stream works normally again.
  CKPT_CUDA(cudaMemsetAsync(b.data(), 0, 1024, stream));
  CKPT_CUDA(cudaStreamSynchronize(stream));
}
