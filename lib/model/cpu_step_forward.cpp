#include "model/cpu_step_forward.h"

#include <algorithm>
#include <stdexcept>

#include "model/cpu_forward.h"

namespace ckpt::model {

namespace {

struct HostActivation final : Activation {
  std::vector<double> v;
  uint64_t n_rows = 0, n_width = 0;
  HostActivation(std::vector<double> values, uint64_t rows, uint64_t width)
      : v(std::move(values)), n_rows(rows), n_width(width) {}
  uint64_t rows() const override { return n_rows; }
  uint64_t width() const override { return n_width; }
};

HostActivation& host(Activation& a) { return dynamic_cast<HostActivation&>(a); }
const HostActivation& host(const Activation& a) { return dynamic_cast<const HostActivation&>(a); }

struct Recorder : ActivationObserver {
  Recording* out;
  explicit Recorder(Recording* r) : out(r) {}
  void on(uint64_t, const std::string& name, const double* data, uint64_t tokens, uint64_t width) override {
    out->emplace_back(name, std::make_unique<HostActivation>(std::vector<double>(data, data + tokens * width), tokens, width));
  }
};

class CpuStepForward final : public StepForward {
 public:
  CpuStepForward(const Model& m, uint64_t batch, uint64_t capacity, const Workers& w) : f_(m, batch, capacity, w) {}

  std::unique_ptr<Activation> embed(const std::vector<int64_t>& ids) override {
    const uint64_t H = f_.model().config().hidden;
    return std::make_unique<HostActivation>(f_.embed(ids), ids.size(), H);
  }
  std::unique_ptr<Activation> copy(const Activation& h) override {
    return std::make_unique<HostActivation>(host(h).v, h.rows(), h.width());
  }
  void layer(uint64_t i, Activation& hidden, uint64_t tokens, Recording* record) override {
    Recorder rec(record);
    f_.layer(i, host(hidden).v, tokens, record ? &rec : nullptr);
  }
  void commit(uint64_t tokens) override { f_.commit(tokens); }
  std::vector<double> logits(const Activation& hidden, uint64_t first, uint64_t rows) override {
    const std::vector<double>& v = host(hidden).v;
    const uint64_t H = hidden.width();
    if (first + rows > hidden.rows()) throw std::logic_error("CpuStepForward::logits: rows out of range");
    return f_.logits(std::vector<double>(v.begin() + first * H, v.begin() + (first + rows) * H));
  }
  std::vector<double> forward(const std::vector<int64_t>& ids, uint64_t tokens) override { return f_.forward(ids, tokens); }
  ActivationDiff diff(const Activation& ref, const Activation& other, bool rescale) override {
    if (ref.rows() != other.rows() || ref.width() != other.width())
      throw std::logic_error("CpuStepForward::diff: activations of different shapes");
    return diff_activations(host(ref).v.data(), host(other).v.data(), ref.rows(), ref.width(), rescale);
  }
  double linear_error_floor() const override { return 0; }

 private:
  CpuForward f_;
};

}  // namespace

ComparedForwards cpu_compared_forwards(const Model& src, const Model& dst, uint64_t batch, uint64_t capacity,
                                       uint64_t tokens, const Workers& workers) {
  ComparedForwards f;
  f.device = "cpu";
  f.src = std::make_unique<CpuStepForward>(src, batch, capacity, workers);
  f.dst = std::make_unique<CpuStepForward>(dst, batch, capacity, workers);
  f.isolated = std::make_unique<CpuStepForward>(dst, batch, tokens, workers);
  return f;
}

}  // namespace ckpt::model
