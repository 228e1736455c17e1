#include "fp8_quant_engine.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "core/error.h"
#include "cuda_check.h"
#include "fp8_quant.h"
#include "gpu_info.h"
#include "staging_pipeline.h"

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

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// amax bits of groups [lo, hi) of a chunk into the running amax (a NaN/Inf block becomes +Inf).
void merge_amax(const unsigned* bits, uint64_t lo, uint64_t hi, float* amax) {
  for (uint64_t g = lo; g < hi; ++g) {
    const unsigned b = bits[g - lo];
    float v;
    std::memcpy(&v, &b, 4);
    amax[g] = std::max(amax[g], b >= 0x7F800000u ? std::numeric_limits<float>::infinity() : v);
  }
}

// Per-CTA partials (3 doubles each) into one piece's error, in CTA order.
void merge_partials(const double* partials, int ctas, ops::Fp8ErrorStats* stats) {
  if (!stats) return;
  for (int c = 0; c < ctas; ++c) stats->merge({partials[3 * c], partials[3 * c + 1], partials[3 * c + 2]});
}

class CudaFp8Engine : public Fp8Engine {
 public:
  std::string name() const override { return "cuda"; }

  // One chunk (the engine's own tests call these): a range of one piece through the pipeline.
  void amax(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
            float* amax) const override {
    amax_pieces(grid, dtype, [&](uint64_t e, uint64_t k, uint8_t* dst) { copy_chunk(dtype, in, first, e, k, dst); },
                first, count, count, amax);
  }
  void quantize(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                const float* scales, uint8_t* out, ops::Fp8ErrorStats* stats) const override {
    quantize_pieces(grid, dtype, [&](uint64_t e, uint64_t k, uint8_t* dst) { copy_chunk(dtype, in, first, e, k, dst); },
                    first, count, count, scales, out, stats, true);
  }

  void amax_range(const ops::Fp8Grid& grid, DType dtype, const SourceElements& src, uint64_t first, uint64_t count,
                  uint64_t step, float* amax) const override {
    amax_pieces(grid, dtype, [&](uint64_t e, uint64_t k, uint8_t* dst) { src.copy(e, k, dst); }, first, count, step,
                amax);
  }
  void quantize_range(const ops::Fp8Grid& grid, DType dtype, const SourceElements& src, uint64_t first, uint64_t count,
                      uint64_t step, const float* scales, uint8_t* out, ops::Fp8ErrorStats* stats) const override {
    quantize_pieces(grid, dtype, [&](uint64_t e, uint64_t k, uint8_t* dst) { src.copy(e, k, dst); }, first, count,
                    step, scales, out, stats, false);
  }

 private:
  using Read = std::function<void(uint64_t e, uint64_t k, uint8_t* dst)>;
  struct Piece {
    uint64_t e, k, lo, hi;
  };

  static void copy_chunk(DType dtype, const uint8_t* in, uint64_t first, uint64_t e, uint64_t k, uint8_t* dst) {
    const uint64_t es = dtype_bits(dtype) / 8;
    std::memcpy(dst, in + (e - first) * es, k * es);
  }

  static std::vector<Piece> pieces(const ops::Fp8Grid& grid, uint64_t first, uint64_t count, uint64_t step) {
    std::vector<Piece> p;
    for_each_piece(first, count, step, [&](uint64_t, uint64_t e, uint64_t k) {
      Piece x{e, k, 0, 0};
      group_range(grid, e, k, x.lo, x.hi);
      p.push_back(x);
    });
    return p;
  }

  // Job: the piece's elements in; amax bits of its groups out.
  static void amax_pieces(const ops::Fp8Grid& grid, DType dtype, const Read& read, uint64_t first, uint64_t count,
                          uint64_t step, float* amax) {
    const std::vector<Piece> ps = pieces(grid, first, count, step);
    const uint64_t es = dtype_bits(dtype) / 8;
    cuda::StagingPipeline::Job job;
    job.sizes = [&](size_t j) {
      const size_t bits = (ps[j].hi - ps[j].lo) * sizeof(unsigned);
      return cuda::StagingPipeline::Sizes{ps[j].k * es, bits, bits};
    };
    job.fill = [&](size_t j, uint8_t* host_in) { read(ps[j].e, ps[j].k, host_in); };
    job.launch = [&](size_t j, const cuda::StagingPipeline::Slot& s) {
      const Piece& p = ps[j];
      CKPT_CUDA(cudaMemsetAsync(s.dev_out, 0, (p.hi - p.lo) * sizeof(unsigned), s.stream));
      const cuda::Fp8ChunkDesc d{grid.rows, grid.cols, grid.block_rows, grid.block_cols, p.e, p.k, p.lo};
      CKPT_CUDA(cuda::fp8_amax_launch(s.dev_in, input_type(dtype), d, reinterpret_cast<unsigned*>(s.dev_out), s.stream));
    };
    job.drain = [&](size_t j, const cuda::StagingPipeline::Slot& s) {
      merge_amax(reinterpret_cast<const unsigned*>(s.host_out), ps[j].lo, ps[j].hi, amax);
    };
    cuda::StagingPipeline::mine().run(ps.size(), job);
  }

  // Job: the piece's elements and its groups' scales in (one copy); its codes and the error
  // partials out. `one_stats`: every piece's error into stats[0] (a chunk), else piece i's into
  // stats[i].
  static void quantize_pieces(const ops::Fp8Grid& grid, DType dtype, const Read& read, uint64_t first, uint64_t count,
                              uint64_t step, const float* scales, uint8_t* out, ops::Fp8ErrorStats* stats,
                              bool one_stats) {
    const std::vector<Piece> ps = pieces(grid, first, count, step);
    const uint64_t es = dtype_bits(dtype) / 8;
    constexpr size_t kPartialsBytes = 3 * sizeof(double) * cuda::kFp8MaxCtas;
    std::array<int, cuda::StagingPipeline::kSlots> ctas{};  // per slot: the partials its job wrote
    auto scales_at = [&](const Piece& p) { return align256(p.k * es); };
    auto partials_at = [&](const Piece& p) { return align256(p.k); };
    cuda::StagingPipeline::Job job;
    job.sizes = [&](size_t j) {
      const Piece& p = ps[j];
      return cuda::StagingPipeline::Sizes{scales_at(p) + (p.hi - p.lo) * sizeof(float), partials_at(p) + kPartialsBytes,
                                          partials_at(p) + kPartialsBytes};
    };
    job.fill = [&](size_t j, uint8_t* host_in) {
      const Piece& p = ps[j];
      read(p.e, p.k, host_in);
      std::memcpy(host_in + scales_at(p), scales + p.lo, (p.hi - p.lo) * sizeof(float));
    };
    job.launch = [&](size_t j, const cuda::StagingPipeline::Slot& s) {
      const Piece& p = ps[j];
      const cuda::Fp8ChunkDesc d{grid.rows, grid.cols, grid.block_rows, grid.block_cols, p.e, p.k, p.lo};
      CKPT_CUDA(cuda::fp8_quantize_launch(s.dev_in, input_type(dtype), d,
                                          reinterpret_cast<const float*>(s.dev_in + scales_at(p)), s.dev_out,
                                          reinterpret_cast<double*>(s.dev_out + partials_at(p)), &ctas[s.index],
                                          s.stream));
    };
    job.drain = [&](size_t j, const cuda::StagingPipeline::Slot& s) {
      const Piece& p = ps[j];
      std::memcpy(out + (p.e - first), s.host_out, p.k);
      if (stats)
        merge_partials(reinterpret_cast<const double*>(s.host_out + partials_at(p)), ctas[s.index],
                       one_stats ? stats : &stats[j]);
    };
    cuda::StagingPipeline::mine().run(ps.size(), job);
  }
};

}  // namespace

std::shared_ptr<const Fp8Engine> cuda_fp8_engine() {
  cuda::require_device();
  static const auto engine = std::make_shared<CudaFp8Engine>();
  return engine;
}

}  // namespace ckpt
