// Streaming producers for INT4 RTN quantization (ops/int4_quant.h): one weight becomes the arrays
// its format stores (codes, scales, zeros, g_idx, weight_shape), each made by its own producer
// that reads, for any chunk the executor asks for, only the source rows/columns of that chunk's
// groups (group parameters depend on their own group alone, so any split gives the same bytes):
//   compressed-tensors weight_packed [N, K/8]: chunk = source rows, whole K;
//   GPTQ qweight [K/8, N] / AWQ qweight [K, N/8]: chunk = a stripe of K columns, widened to whole
//     groups, every row (read in strips of rows);
//   scales / zeros: the parameters of the chunk's groups.
// Memory per chunk is a few times the chunk (kStripBytes of source at a time); nothing holds a
// whole tensor.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "ops/int4_quant.h"
#include "plan/plan.h"

namespace ckpt {

// One weight [N, K] being quantized.
class Int4Quantization {
 public:
  Int4Quantization(std::string tensor, SourceView view, ops::Int4Scheme scheme);

  const std::string& tensor() const { return tensor_; }
  const ops::Int4Scheme& scheme() const { return scheme_; }
  const ops::Int4Geometry& geometry() const { return geo_; }
  const SourceView& view() const { return view_; }
  // The error of everything the codes producer has written, summed per chunk in chunk order (the
  // same for any thread count). Each element is counted once: in the chunk holding its unit's
  // first word.
  ops::Fp8ErrorStats stats() const;

  // Runs ops::int4_quantize_fast over source rows [r0, r1) and columns [c0, c1) (group
  // boundaries), reading about kStripBytes of source at a time: for each strip of rows (a
  // multiple of 8 rows), `each(row0, rows, params, words)` sees the strip's parameters
  // ([rows, (c1 - c0) / group]) and, when kb < ke, its K-packed words of columns [kb, ke)
  // ([rows, ceil((ke - kb) / 8)]). Errors of columns [ks, ke) are added to stats slot `slot`
  // (ks == ke: none). A NaN/Inf element fails naming the file and the tensor.
  using StripFn = std::function<void(uint64_t row0, uint64_t rows, const ops::Int4Params* params, const uint32_t* words)>;
  void run(const SourceReader& src, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1, uint64_t kb, uint64_t ke,
           uint64_t ks, uint64_t slot, const StripFn& each) const;

 private:
  void add_stats(uint64_t slot, const ops::Fp8ErrorStats& s) const;

  std::string tensor_;
  SourceView view_;
  ops::Int4Scheme scheme_;
  ops::Int4Geometry geo_;
  mutable std::mutex stats_mutex_;
  mutable std::map<uint64_t, ops::Fp8ErrorStats> stats_;
};

// The format's arrays of `q` (shapes: ops::int4_shapes).
std::shared_ptr<Producer> int4_codes_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_scales_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_zeros_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_g_idx_producer(std::shared_ptr<const Int4Quantization> q);
std::shared_ptr<Producer> int4_weight_shape_producer(std::shared_ptr<const Int4Quantization> q);

}  // namespace ckpt
