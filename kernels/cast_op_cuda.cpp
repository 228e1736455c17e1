#include "cast_op_cuda.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cast.h"
#include "core/error.h"
#include "cuda_check.h"
#include "gpu_info.h"
#include "ops/cast.h"
#include "ops/cast_op.h"

namespace ckpt::cuda {

namespace {

ops::FloatFormat format_of(DType t) {
  ops::FloatFormat f;
  if (!ops::float_format_of(t, &f)) throw std::logic_error("cuda cast: not a float dtype");
  return f;
}

class CudaCastOp : public ElementOp {
 public:
  CudaCastOp(DType in, DType out) : in_(in), out_(out) {
    if (!ops::is_cast_source(in) || !ops::is_cast_target(out))
      throw std::logic_error("CudaCastOp: unsupported pair " + ops::cast_op_name(in, out));
  }
  DType in_dtype() const override { return in_; }
  DType out_dtype() const override { return out_; }
  std::string name() const override { return ops::cast_op_name(in_, out_) + " (cuda)"; }

  void apply(const uint8_t* in, uint8_t* out, uint64_t n) const override {
    if (n == 0) return;
    const size_t in_bytes = n * (dtype_bits(in_) / 8), out_bytes = n * (dtype_bits(out_) / 8);
    ThreadWorkspace& w = ThreadWorkspace::mine();
    void* d_in = w.buffer(0, in_bytes);
    void* d_out = w.buffer(1, out_bytes);
    CKPT_CUDA(cudaMemcpyAsync(d_in, in, in_bytes, cudaMemcpyHostToDevice, w.stream()));
    CKPT_CUDA(launch_cast(format_of(in_), format_of(out_), d_in, d_out, n, w.stream()));
    CKPT_CUDA(cudaMemcpyAsync(out, d_out, out_bytes, cudaMemcpyDeviceToHost, w.stream()));
    CKPT_CUDA(cudaStreamSynchronize(w.stream()));
  }

 private:
  DType in_, out_;
};

}  // namespace

std::shared_ptr<const ElementOp> make_cast_op(DType in, DType out) { return std::make_shared<CudaCastOp>(in, out); }

}  // namespace ckpt::cuda
