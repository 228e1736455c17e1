#include "fp8_quant_engine.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "fp8_quant.h"
#include "gpu_info.h"

namespace ckpt {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(Errc::kIo, "", "", std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

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

// Device buffers and a stream per calling thread (the executor calls from several at once).
struct Workspace {
  cudaStream_t stream = nullptr;
  void* in = nullptr;
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  unsigned* amax = nullptr;
  double* partials = nullptr;
  size_t in_cap = 0, codes_cap = 0, groups_cap = 0;

  Workspace() {
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    check(cudaMalloc(&partials, 3 * sizeof(double) * cuda::kFp8MaxCtas), "malloc");
  }
  ~Workspace() {
    cudaFree(in);
    cudaFree(codes);
    cudaFree(scales);
    cudaFree(amax);
    cudaFree(partials);
    if (stream) cudaStreamDestroy(stream);
  }
  template <class T>
  static void grow(T*& p, size_t& cap, size_t bytes) {
    if (bytes <= cap) return;
    cudaFree(p);
    p = nullptr;
    check(cudaMalloc(reinterpret_cast<void**>(&p), bytes), "malloc");
    cap = bytes;
  }
  void reserve(size_t in_bytes, size_t codes_bytes, size_t groups) {
    grow(in, in_cap, in_bytes);
    grow(codes, codes_cap, codes_bytes);
    if (groups * sizeof(float) > groups_cap) {
      size_t cap = groups_cap;
      grow(scales, cap, groups * sizeof(float));
      cap = groups_cap;
      grow(amax, cap, groups * sizeof(unsigned));
      groups_cap = groups * sizeof(float);
    }
  }
  static Workspace& mine() {
    thread_local Workspace w;
    return w;
  }
};

class CudaFp8Engine : public Fp8Engine {
 public:
  std::string name() const override { return "cuda"; }

  void amax(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
            float* amax) const override {
    if (count == 0) return;
    uint64_t lo, hi;
    group_range(grid, first, count, lo, hi);
    const size_t in_bytes = count * (dtype_bits(dtype) / 8);
    Workspace& w = Workspace::mine();
    w.reserve(in_bytes, 0, hi - lo);
    check(cudaMemcpyAsync(w.in, in, in_bytes, cudaMemcpyHostToDevice, w.stream), "copy to device");
    check(cudaMemsetAsync(w.amax, 0, (hi - lo) * sizeof(unsigned), w.stream), "memset");
    const cuda::Fp8ChunkDesc d{grid.rows, grid.cols, grid.block_rows, grid.block_cols, first, count, lo};
    check(cuda::fp8_amax_launch(w.in, input_type(dtype), d, w.amax, w.stream), "amax kernel");
    std::vector<unsigned> bits(hi - lo);
    check(cudaMemcpyAsync(bits.data(), w.amax, bits.size() * sizeof(unsigned), cudaMemcpyDeviceToHost, w.stream),
          "copy to host");
    check(cudaStreamSynchronize(w.stream), "amax");
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
    Workspace& w = Workspace::mine();
    w.reserve(in_bytes, count, hi - lo);
    check(cudaMemcpyAsync(w.in, in, in_bytes, cudaMemcpyHostToDevice, w.stream), "copy to device");
    check(cudaMemcpyAsync(w.scales, scales + lo, (hi - lo) * sizeof(float), cudaMemcpyHostToDevice, w.stream),
          "copy to device");
    const cuda::Fp8ChunkDesc d{grid.rows, grid.cols, grid.block_rows, grid.block_cols, first, count, lo};
    int ctas = 0;
    check(cuda::fp8_quantize_launch(w.in, input_type(dtype), d, w.scales, w.codes, w.partials, &ctas, w.stream),
          "quantize kernel");
    std::vector<double> partials(3 * static_cast<size_t>(ctas));
    check(cudaMemcpyAsync(out, w.codes, count, cudaMemcpyDeviceToHost, w.stream), "copy to host");
    check(cudaMemcpyAsync(partials.data(), w.partials, partials.size() * sizeof(double), cudaMemcpyDeviceToHost,
                          w.stream),
          "copy to host");
    check(cudaStreamSynchronize(w.stream), "quantize");
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
