#include "fp8_quant_engine.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "cuda_check.h"
#include "fp8_quant.h"
#include "gpu_info.h"

namespace ckpt {

namespace {

cuda::Fp8InputType input_type(DType t) {
  switch (t) {
    case DType::BF16: return cuda::kFp8InBF16;
    case DType::F16: return cuda::kFp8InF16;
    case DType::F32: return cuda::kFp8InF32;
    default: throw std::logic_error("cuda fp8: unsupported input dtype");
  }
}

// The scale-grid rows a chunk touches: groups [first, last) of whole block rows.
void group_range(const ops::Fp8Grid& g, uint64_t first, uint64_t count, uint64_t& lo, uint64_t& hi) {
  const uint64_t r0 = first / g.cols, r1 = (first + count - 1) / g.cols;
  lo = (r0 / g.block_rows) * g.grid_cols();
  hi = (r1 / g.block_rows + 1) * g.grid_cols();
}

// The calling thread's workspace buffers (cuda::ThreadWorkspace slots).
enum Slot : size_t { kIn, kCodes, kScales, kAmax, kPartials };

class CudaFp8Engine : public Fp8Engine {
 public:
  std::string name() const override { return "cuda"; }

  void amax(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
            float* amax) const override {
    if (count == 0) return;
    uint64_t lo, hi;
    group_range(grid, first, count, lo, hi);
    const size_t in_bytes = count * (dtype_bits(dtype) / 8);
    cuda::ThreadWorkspace& w = cuda::ThreadWorkspace::mine();
    void* d_in = w.buffer(kIn, in_bytes);
    unsigned* d_amax = w.buffer<unsigned>(kAmax, (hi - lo) * sizeof(unsigned));
    CKPT_CUDA(cudaMemcpyAsync(d_in, in, in_bytes, cudaMemcpyHostToDevice, w.stream()));
    CKPT_CUDA(cudaMemsetAsync(d_amax, 0, (hi - lo) * sizeof(unsigned), w.stream()));
    const cuda::Fp8ChunkDesc d{grid.rows, grid.cols, grid.block_rows, grid.block_cols, first, count, lo};
    CKPT_CUDA(cuda::fp8_amax_launch(d_in, input_type(dtype), d, d_amax, w.stream()));
    std::vector<unsigned> bits(hi - lo);
    CKPT_CUDA(cudaMemcpyAsync(bits.data(), d_amax, bits.size() * sizeof(unsigned), cudaMemcpyDeviceToHost, w.stream()));
    CKPT_CUDA(cudaStreamSynchronize(w.stream()));
    for (uint64_t g = lo; g < hi; ++g) {
      const unsigned b = bits[g - lo];
      float v;
      std::memcpy(&v, &b, 4);
      amax[g] = std::max(amax[g], b >= 0x7F800000u ? std::numeric_limits<float>::infinity() : v);
    }
  }

  void quantize(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                const float* scales, uint8_t* out, ops::Fp8ErrorStats* stats) const override {
    if (count == 0) return;
    uint64_t lo, hi;
    group_range(grid, first, count, lo, hi);
    const size_t in_bytes = count * (dtype_bits(dtype) / 8);
    cuda::ThreadWorkspace& w = cuda::ThreadWorkspace::mine();
    void* d_in = w.buffer(kIn, in_bytes);
    uint8_t* d_codes = w.buffer<uint8_t>(kCodes, count);
    float* d_scales = w.buffer<float>(kScales, (hi - lo) * sizeof(float));
    double* d_partials = w.buffer<double>(kPartials, 3 * sizeof(double) * cuda::kFp8MaxCtas);
    CKPT_CUDA(cudaMemcpyAsync(d_in, in, in_bytes, cudaMemcpyHostToDevice, w.stream()));
    CKPT_CUDA(cudaMemcpyAsync(d_scales, scales + lo, (hi - lo) * sizeof(float), cudaMemcpyHostToDevice, w.stream()));
    const cuda::Fp8ChunkDesc d{grid.rows, grid.cols, grid.block_rows, grid.block_cols, first, count, lo};
    int ctas = 0;
    CKPT_CUDA(cuda::fp8_quantize_launch(d_in, input_type(dtype), d, d_scales, d_codes, d_partials, &ctas, w.stream()));
    std::vector<double> partials(3 * static_cast<size_t>(ctas));
    CKPT_CUDA(cudaMemcpyAsync(out, d_codes, count, cudaMemcpyDeviceToHost, w.stream()));
    CKPT_CUDA(cudaMemcpyAsync(partials.data(), d_partials, partials.size() * sizeof(double), cudaMemcpyDeviceToHost,
                              w.stream()));
    CKPT_CUDA(cudaStreamSynchronize(w.stream()));
    if (!stats) return;
    for (int c = 0; c < ctas; ++c) stats->merge({partials[3 * c], partials[3 * c + 1], partials[3 * c + 2]});
  }
};

}  // namespace

std::shared_ptr<const Fp8Engine> cuda_fp8_engine() {
  if (cuda::device_count() == 0)
    fail(Errc::kUnsupported, "", "", "--device cuda: no usable CUDA GPU on this machine (use --device cpu)");
  static const auto engine = std::make_shared<CudaFp8Engine>();
  return engine;
}

}  // namespace ckpt
