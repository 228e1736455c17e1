// Streaming producers for FP8 quantization: one weight becomes two output tensors (the E4M3FN
// codes and the scales), made by two producers that share one Fp8Quantization. The first
// prepare() of either runs the amax pass (the weight read in bounded stripes, only the per-block
// amax kept: a few floats per block), under std::call_once; the codes producer then quantizes
// any chunk on its own (a quantize pass), so no whole-tensor buffer ever exists.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ops/fp8_quant.h"
#include "plan/plan.h"
#include "plan/source_reader.h"

namespace ckpt {

// Where the FP8 math runs: the CPU fast path (the default) or a GPU (kernels/, --device cuda).
// Every engine must give the reference's bytes (ops::fp8_*_reference).
class Fp8Engine {
 public:
  virtual ~Fp8Engine() = default;
  virtual std::string name() const = 0;
  // As ops::fp8_amax_fast / ops::fp8_quantize_fast: `in` holds elements [first, first + count).
  virtual void amax(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                    float* amax) const = 0;
  virtual void quantize(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                        const float* scales, uint8_t* out, ops::Fp8ErrorStats* stats) const = 0;
  // What a Fp8Quantization asks: elements [first, first + count) of `src`, cut into pieces at the
  // multiples of `step`; piece i's error goes to stats[i] (quantize_range), every piece raises
  // `amax` (amax_range). The defaults run amax / quantize on each piece in turn; a GPU engine
  // overrides them to keep several pieces in flight.
  virtual void amax_range(const ops::Fp8Grid& grid, DType dtype, const SourceElements& src, uint64_t first,
                          uint64_t count, uint64_t step, float* amax) const;
  virtual void quantize_range(const ops::Fp8Grid& grid, DType dtype, const SourceElements& src, uint64_t first,
                              uint64_t count, uint64_t step, const float* scales, uint8_t* out,
                              ops::Fp8ErrorStats* stats) const;
};

// The pieces of [first, first + count) cut at the multiples of `step`: calls fn(i, e, k) for
// piece i = elements [e, e + k).
template <class Fn>
void for_each_piece(uint64_t first, uint64_t count, uint64_t step, Fn fn) {
  uint64_t i = 0;
  for (uint64_t e = first; e < first + count; ++i) {
    const uint64_t k = std::min(first + count, (e / step + 1) * step) - e;
    fn(i, e, k);
    e += k;
  }
}
// How many pieces that is.
inline uint64_t piece_count(uint64_t first, uint64_t count, uint64_t step) {
  return count == 0 ? 0 : (first + count - 1) / step - first / step + 1;
}

std::shared_ptr<const Fp8Engine> cpu_fp8_engine();

// One weight being quantized.
class Fp8Quantization {
 public:
  Fp8Quantization(std::string tensor, SourceView view, ops::Fp8Grid grid, DType scale_dtype,
                  std::shared_ptr<const Fp8Engine> engine);

  // The amax pass (once, whoever asks first). A NaN or Inf element is an error naming the tensor.
  void ensure_scales(const SourceReader& src);
  // The stored value of each block's scale, row-major over the grid (after ensure_scales).
  const std::vector<float>& scales() const { return scales_; }
  // Codes of elements [first, first + count).
  void quantize(const SourceReader& src, uint64_t first, uint64_t count, uint8_t* out) const;

  const std::string& tensor() const { return tensor_; }
  const SourceView& view() const { return view_; }
  const ops::Fp8Grid& grid() const { return grid_; }
  DType scale_dtype() const { return scale_dtype_; }
  const Fp8Engine& engine() const { return *engine_; }
  // The error over everything quantized so far. Summed per 1 Mi-element block in order, so the
  // same for any thread count.
  ops::Fp8ErrorStats stats() const;

 private:
  std::string tensor_;
  SourceView view_;
  ops::Fp8Grid grid_;
  DType scale_dtype_;
  std::shared_ptr<const Fp8Engine> engine_;
  std::once_flag once_;
  std::vector<float> scales_;
  mutable std::mutex stats_mutex_;
  mutable std::map<uint64_t, ops::Fp8ErrorStats> stats_;  // by 1 Mi-element block
};

// The F8_E4M3 codes of the weight (same shape).
std::shared_ptr<Producer> fp8_codes_producer(std::shared_ptr<Fp8Quantization> q);
// The scales, row-major over the grid, in the quantization's scale dtype.
std::shared_ptr<Producer> fp8_scales_producer(std::shared_ptr<Fp8Quantization> q);

}  // namespace ckpt
