#include "runtime/gpu_step_forward.h"

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>

#include "cuda_check.h"
#include "runtime/compare_kernels.h"
#include "runtime/gpu_forward.h"

namespace ckpt::cuda {

namespace {

// Device buffers of recorded activations, kept for the next layer's, which has the same sizes:
// cudaMalloc / cudaFree (the latter synchronises the device) once per size, not per Linear and
// layer. A buffer comes back only when its activation is gone, after the comparison's last read
// of it (every call of GpuStepForward returns with its work finished). MoE experts' outputs vary
// in rows from layer to layer: a buffer at least as large is taken, and at most kIdle buffers
// wait (the smallest dropped first), so the pool stays near one layer's worth.
struct BufferPool {
  static constexpr size_t kIdle = 32;
  std::multimap<size_t, DeviceBuffer> idle;  // by size
  DeviceBuffer take(size_t bytes) {
    auto it = idle.lower_bound(bytes);
    if (it == idle.end()) return DeviceBuffer(bytes);
    DeviceBuffer b = std::move(it->second);
    idle.erase(it);
    return b;
  }
  void give(DeviceBuffer b) {
    const size_t n = b.size();
    idle.emplace(n, std::move(b));
    if (idle.size() > kIdle) idle.erase(idle.begin());
  }
};

struct DeviceActivation final : model::Activation {
  DeviceBuffer buf;
  uint64_t n_rows = 0, n_width = 0;
  std::shared_ptr<BufferPool> pool;  // where buf goes back to (none: freed)
  DeviceActivation(std::shared_ptr<BufferPool> p, uint64_t rows, uint64_t width)
      : buf(p->take(std::max<uint64_t>(rows * width, 1) * sizeof(float))), n_rows(rows), n_width(width), pool(std::move(p)) {}
  DeviceActivation(DeviceBuffer b, uint64_t rows, uint64_t width) : buf(std::move(b)), n_rows(rows), n_width(width) {}
  ~DeviceActivation() override {
    if (pool && buf.data()) pool->give(std::move(buf));
  }
  uint64_t rows() const override { return n_rows; }
  uint64_t width() const override { return n_width; }
  float* data() const { return buf.as<float>(); }
};

const DeviceActivation& device(const model::Activation& a) { return dynamic_cast<const DeviceActivation&>(a); }

// Keeps a copy of each activation the layer shows (the forward's buffers are reused by the next Linear).
struct Recorder final : DeviceActivationObserver {
  model::Recording* out;
  std::shared_ptr<BufferPool> pool;
  Recorder(model::Recording* r, std::shared_ptr<BufferPool> p) : out(r), pool(std::move(p)) {}
  void on(uint64_t, const std::string& name, const float* data, uint64_t rows, uint64_t width, cudaStream_t stream) override {
    auto a = std::make_unique<DeviceActivation>(pool, rows, width);
    CKPT_CUDA(cudaMemcpyAsync(a->data(), data, rows * width * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    out->emplace_back(name, std::move(a));
  }
};

class GpuStepForward final : public model::StepForward {
 public:
  // `commits`: false for the isolated forward, which runs on the destination's GpuForward and
  // leaves its position to the destination.
  GpuStepForward(std::shared_ptr<GpuForward> f, uint64_t hidden, bool commits)
      : f_(std::move(f)), hidden_(hidden), commits_(commits) {}

  std::unique_ptr<model::Activation> embed(const std::vector<int64_t>& ids) override {
    DeviceBuffer h = f_->embed(ids);
    sync();
    return std::make_unique<DeviceActivation>(std::move(h), ids.size(), hidden_);
  }
  std::unique_ptr<model::Activation> copy(const model::Activation& hidden) override {
    // `hidden` may belong to another forward: every call here returns with its work finished.
    const DeviceActivation& h = device(hidden);
    auto a = std::make_unique<DeviceActivation>(pool_, h.rows(), h.width());
    CKPT_CUDA(cudaMemcpyAsync(a->data(), h.data(), h.rows() * h.width() * sizeof(float), cudaMemcpyDeviceToDevice,
                              f_->stream()));
    sync();
    return a;
  }
  void layer(uint64_t i, model::Activation& hidden, uint64_t tokens, model::Recording* record) override {
    Recorder rec(record, pool_);
    f_->layer(i, device(hidden).data(), tokens, record ? &rec : nullptr);
    sync();
  }
  void commit(uint64_t tokens) override {
    if (commits_) f_->commit(tokens);
  }
  std::vector<double> logits(const model::Activation& hidden, uint64_t first, uint64_t rows) override {
    if (first + rows > hidden.rows()) throw std::logic_error("GpuStepForward::logits: rows out of range");
    const std::vector<float> l = f_->logits(device(hidden).data() + first * hidden_, rows);
    return std::vector<double>(l.begin(), l.end());
  }
  std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens) override { return f_->forward(ids, tokens); }
  model::ActivationDiff diff(const model::Activation& ref, const model::Activation& other, bool rescale) override;
  double linear_error_floor() const override { return kFloat32LinearErrorFloor; }

 private:
  void sync() { CKPT_CUDA(cudaStreamSynchronize(f_->stream())); }

  std::shared_ptr<GpuForward> f_;
  uint64_t hidden_;
  bool commits_;
  DeviceBuffer rows_, alpha_;  // diff()'s per-row sums and per-column scales, reused
  std::shared_ptr<BufferPool> pool_ = std::make_shared<BufferPool>();
};

model::ActivationDiff GpuStepForward::diff(const model::Activation& ref, const model::Activation& other, bool rescale) {
  if (ref.rows() != other.rows() || ref.width() != other.width())
    throw std::logic_error("GpuStepForward::diff: activations of different shapes");
  const uint64_t rows = ref.rows(), width = ref.width();
  const float* a = device(ref).data();
  const float* b = device(other).data();
  cudaStream_t stream = f_->stream();
  rows_.reserve(std::max<uint64_t>(rows, 1) * sizeof(RowDiff));
  const double* alpha = nullptr;
  if (rescale) {
    alpha_.reserve(std::max<uint64_t>(width, 1) * sizeof(double));
    CKPT_CUDA(column_scales(a, b, rows, width, alpha_.as<double>(), stream));
    alpha = alpha_.as<double>();
  }
  CKPT_CUDA(row_diffs(a, b, rows, width, alpha, rows_.as<RowDiff>(), stream));
  std::vector<RowDiff> host(rows);
  CKPT_CUDA(cudaMemcpyAsync(host.data(), rows_.data(), rows * sizeof(RowDiff), cudaMemcpyDeviceToHost, stream));
  sync();
  // Combined in row order, as diff_activations takes them (lib/model/activation_diff.cpp).
  model::ActivationDiff d;
  double scaled = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    const RowDiff& x = host[r];
    d.sum_sq_diff += x.dd;
    d.sum_sq_ref += x.aa;
    scaled += x.dd_scaled;
    if (x.max_abs > d.max_abs_diff) d.max_abs_diff = x.max_abs, d.max_at = r * width + x.max_col;
    d.min_row_cosine = std::min(d.min_row_cosine, model::row_cosine(x.ab, x.aa, x.bb));
  }
  if (rescale) d.rescaled_sq_diff = scaled;
  return d;
}

}  // namespace

model::ComparedForwards gpu_compared_forwards(const model::Model& src, const model::Model& dst, uint64_t batch,
                                              uint64_t capacity) {
  model::ComparedForwards f;
  f.device = "cuda";
  auto s = std::make_shared<GpuForward>(src, batch, capacity);
  auto d = std::make_shared<GpuForward>(dst, batch, capacity);
  const uint64_t H = src.config().hidden;
  f.src = std::make_unique<GpuStepForward>(s, H, true);
  f.dst = std::make_unique<GpuStepForward>(d, H, true);
  f.isolated = std::make_unique<GpuStepForward>(d, H, false);
  return f;
}

}  // namespace ckpt::cuda
