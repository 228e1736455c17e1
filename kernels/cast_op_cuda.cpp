#include "cast_op_cuda.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cast.h"
#include "core/error.h"
#include "gpu_info.h"
#include "ops/cast.h"
#include "ops/cast_op.h"

namespace ckpt::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(Errc::kIo, "", "", std::string("CUDA cast, ") + what + ": " + cudaGetErrorString(e));
}

ops::FloatFormat format_of(DType t) {
  ops::FloatFormat f;
  if (!ops::float_format_of(t, &f)) throw std::logic_error("cuda cast: not a float dtype");
  return f;
}

// A stream and device buffers per calling thread (the executor converts chunks on several
// threads at once); buffers grow to the largest chunk seen and live as long as the thread.
struct Workspace {
  cudaStream_t stream = nullptr;
  void* in = nullptr;
  void* out = nullptr;
  size_t in_cap = 0, out_cap = 0;

  Workspace() { check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream"); }
  ~Workspace() {
    cudaFree(in);
    cudaFree(out);
    if (stream) cudaStreamDestroy(stream);
  }
  static void grow(void*& p, size_t& cap, size_t bytes) {
    if (bytes <= cap) return;
    cudaFree(p);
    p = nullptr;
    cap = 0;
    check(cudaMalloc(&p, bytes), "device allocation");
    cap = bytes;
  }
  static Workspace& mine() {
    thread_local Workspace w;
    return w;
  }
};

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
    Workspace& w = Workspace::mine();
    Workspace::grow(w.in, w.in_cap, in_bytes);
    Workspace::grow(w.out, w.out_cap, out_bytes);
    check(cudaMemcpyAsync(w.in, in, in_bytes, cudaMemcpyHostToDevice, w.stream), "copy to device");
    check(launch_cast(format_of(in_), format_of(out_), w.in, w.out, n, w.stream), "kernel launch");
    check(cudaMemcpyAsync(out, w.out, out_bytes, cudaMemcpyDeviceToHost, w.stream), "copy to host");
    check(cudaStreamSynchronize(w.stream), "kernel");
  }

 private:
  DType in_, out_;
};

}  // namespace

void require_cast_device() {
  if (device_count() == 0)
    fail(Errc::kUnsupported, "", "", "--device cuda: no usable CUDA GPU on this machine (use --device cpu)");
}

std::shared_ptr<const ElementOp> make_cast_op(DType in, DType out) { return std::make_shared<CudaCastOp>(in, out); }

}  // namespace ckpt::cuda
