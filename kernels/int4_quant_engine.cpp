#include "int4_quant_engine.h"

#include <cuda_runtime.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "cuda_check.h"
#include "gpu_info.h"
#include "int4_quant.h"
#include "int4_quant_host.h"
#include "ops/float_convert.h"
#include "ops/int4_math.h"
#include "staging_pipeline.h"

namespace ckpt {

namespace {

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// Where a strip's arrays lie in its device output (and their copy): words, scales, zeros, then
// the kernel's workspace, whose leading result bytes come back with them.
struct StripLayout {
  cuda::Int4QuantArgs args;  // device pointers relative to 0 (offsets), see at()
  size_t words = 0, scales = 0, zeros = 0, workspace = 0, device_bytes = 0, copy_bytes = 0;
};

// The kernel's arguments for one strip, seen as a weight of its own (n = its rows, row0 0), its
// arrays in the compressed-tensors layout the cache keeps. Parameters depend only on their own
// group, so the strip alone gives the whole weight's words and parameters.
StripLayout strip_layout(const ops::Int4Scheme& scheme, const ops::Int4Geometry& geo, DType in, uint64_t rows) {
  ops::Int4Geometry local = geo;
  local.n = rows;
  StripLayout l;
  l.args = cuda::int4_kernel_args(scheme, in, local, 0, rows, nullptr, nullptr, nullptr, nullptr, nullptr, true);
  l.args.layout = ops::kInt4Ct;
  const size_t ss = dtype_bits(scheme.scale_dtype) / 8;
  l.scales = align256(rows * (geo.k / 8) * 4);
  l.zeros = l.scales + align256(rows * geo.groups * ss);
  l.workspace = l.zeros + align256((rows + 7) / 8 * geo.groups * 4);
  l.device_bytes = l.workspace + cuda::Int4QuantKernel::get_workspace_size(l.args);
  l.copy_bytes = l.workspace + cuda::Int4QuantKernel::result_bytes(l.args);
  return l;
}

// The arguments with their device pointers in `base`.
cuda::Int4QuantArgs at(const StripLayout& l, const uint8_t* in, uint8_t* base) {
  cuda::Int4QuantArgs a = l.args;
  a.in = in;
  a.weights = reinterpret_cast<uint32_t*>(base + l.words);
  a.scales = base + l.scales;
  a.zeros = reinterpret_cast<uint32_t*>(base + l.zeros);  // symmetric too: the cache keeps every zero (8)
  a.g_idx = nullptr;
  return a;
}

float scale_value(const uint8_t* p, DType t) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::F16 ? ops::f16_to_f32(h) : ops::bf16_to_f32(h);  // exact: the stored scale
}

class CudaInt4Engine : public Int4Engine {
 public:
  std::string name() const override { return "cuda"; }
  // 4 MiB of source per strip: long enough copies (~0.2 ms over PCIe) that each job's fixed costs
  // (launches, an event) stay small, with three in flight per thread in bounded pinned memory.
  uint64_t strip_bytes() const override { return 4ull << 20; }
  // Eight at a time (32 MiB of source): enough for the pipeline's three slots to overlap, while the
  // other threads that need the weight (a GPTQ/AWQ qweight chunk needs every strip) claim the rest
  // and read them in parallel instead of waiting for one thread to read the whole weight.
  uint64_t strips_per_claim() const override { return 8; }

  ops::Int4Issue quantize_strips(const ops::Int4Scheme& scheme, const ops::Int4Geometry& geo,
                                 const std::vector<Strip>& strips, const SourceElements& src, uint32_t* words,
                                 ops::Int4Params* params, ops::Fp8ErrorStats* stats) const override {
    if (strips.empty()) return {};
    const DType in = src.view().dtype;
    for (const Strip& s : strips)
      if (cuda::Int4QuantKernel::can_implement(at(strip_layout(scheme, geo, in, s.rows), reinterpret_cast<uint8_t*>(256),
                                                  reinterpret_cast<uint8_t*>(256))) != cuda::Int4Status::kSuccess)
        return cpu_int4_engine()->quantize_strips(scheme, geo, strips, src, words, params, stats);
    const uint64_t es = dtype_bits(in) / 8, W = geo.k / 8;
    const size_t ss = dtype_bits(scheme.scale_dtype) / 8;
    ops::Int4Issue first;
    cuda::StagingPipeline::Job job;
    job.sizes = [&](size_t j) {
      const StripLayout l = strip_layout(scheme, geo, in, strips[j].rows);
      return cuda::StagingPipeline::Sizes{strips[j].rows * geo.k * es, l.device_bytes, l.copy_bytes};
    };
    job.fill = [&](size_t j, uint8_t* host_in) { src.copy(strips[j].row0 * geo.k, strips[j].rows * geo.k, host_in); };
    job.launch = [&](size_t j, const cuda::StagingPipeline::Slot& s) {
      const StripLayout l = strip_layout(scheme, geo, in, strips[j].rows);
      const cuda::Int4QuantArgs a = at(l, s.dev_in, s.dev_out);
      cuda::Int4QuantKernel kernel;
      const cuda::Int4Status st = kernel.run(a, s.dev_out + l.workspace, s.stream);
      if (st == cuda::Int4Status::kCudaError) cuda::check_cuda(kernel.last_error(), "Int4QuantKernel::run");
      if (st != cuda::Int4Status::kSuccess)
        throw std::logic_error(std::string("cuda int4: the kernel refused a strip it had accepted: ") +
                               cuda::int4_status_name(st));
    };
    job.drain = [&](size_t j, const cuda::StagingPipeline::Slot& s) {
      if (first) return;  // the weight has failed: the rest is not needed
      const Strip& strip = strips[j];
      const StripLayout l = strip_layout(scheme, geo, in, strip.rows);
      cuda::Int4QuantResult r = cuda::Int4QuantKernel::result_from(l.args, s.host_out + l.workspace);
      if (r.issue) {
        r.row += strip.row0;  // the kernel saw the strip as a weight of its own
        first = cuda::int4_issue_of(r, scheme, in, geo, strip.row0, s.host_in);
        return;
      }
      std::memcpy(words + strip.row0 * W, s.host_out + l.words, strip.rows * W * 4);
      const uint8_t* sc = s.host_out + l.scales;
      const uint32_t* z = reinterpret_cast<const uint32_t*>(s.host_out + l.zeros);
      for (uint64_t r8 = 0; r8 < strip.rows; ++r8)
        for (uint64_t g = 0; g < geo.groups; ++g)
          params[(strip.row0 + r8) * geo.groups + g] = {
              scale_value(sc + (r8 * geo.groups + g) * ss, scheme.scale_dtype),
              static_cast<uint8_t>((z[r8 / 8 * geo.groups + g] >> (4 * (r8 % 8))) & 15u)};
      stats[j] = {r.sum_sq_err, r.sum_sq, r.max_abs_err};
    };
    cuda::StagingPipeline::mine().run(strips.size(), job);
    return first;
  }
};

}  // namespace

std::shared_ptr<const Int4Engine> cuda_int4_engine() {
  cuda::require_device();
  static const auto engine = std::make_shared<CudaInt4Engine>();
  return engine;
}

}  // namespace ckpt
