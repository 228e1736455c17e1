#include "ops/fp8_producers.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ckpt {

namespace {

constexpr uint64_t kStripeBytes = 4ull << 20;  // source bytes read at a time by the amax pass
constexpr uint64_t kStatsBlock = 1ull << 20;   // elements per error-statistics slot

}  // namespace

void Fp8Engine::amax_range(const ops::Fp8Grid& grid, DType dtype, const SourceElements& src, uint64_t first,
                           uint64_t count, uint64_t step, float* amax) const {
  for_each_piece(first, count, step, [&](uint64_t, uint64_t e, uint64_t k) {
    src.with(e, k, [&](const uint8_t* in) { this->amax(grid, dtype, in, e, k, amax); });
  });
}

void Fp8Engine::quantize_range(const ops::Fp8Grid& grid, DType dtype, const SourceElements& src, uint64_t first,
                               uint64_t count, uint64_t step, const float* scales, uint8_t* out,
                               ops::Fp8ErrorStats* stats) const {
  for_each_piece(first, count, step, [&](uint64_t i, uint64_t e, uint64_t k) {
    src.with(e, k, [&](const uint8_t* in) { quantize(grid, dtype, in, e, k, scales, out + (e - first), &stats[i]); });
  });
}

namespace {

class CpuFp8Engine : public Fp8Engine {
 public:
  std::string name() const override { return "cpu"; }
  void amax(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
            float* amax) const override {
    ops::fp8_amax_fast(grid, dtype, in, first, count, amax);
  }
  void quantize(const ops::Fp8Grid& grid, DType dtype, const uint8_t* in, uint64_t first, uint64_t count,
                const float* scales, uint8_t* out, ops::Fp8ErrorStats* stats) const override {
    ops::fp8_quantize_fast(grid, dtype, in, first, count, scales, out, stats);
  }
};

ojson describe_quantization(const Fp8Quantization& q, const char* what) {
  ojson d = ojson::object();
  d["op"] = what;
  d["tensor"] = q.tensor();
  d["block"] = {q.grid().block_rows, q.grid().block_cols};
  d["scale_dtype"] = std::string(dtype_name(q.scale_dtype()));
  d["engine"] = q.engine().name();
  d["source"] = {{"file", q.view().file}, {"offset", q.view().offset}, {"dtype", std::string(dtype_name(q.view().dtype))}};
  if (q.view().produced) d["source"]["produced"] = q.view().produced->describe();
  return d;
}

class Fp8CodesProducer : public Producer {
 public:
  explicit Fp8CodesProducer(std::shared_ptr<Fp8Quantization> q) : q_(std::move(q)) {}
  uint64_t nbytes() const override { return q_->grid().numel(); }
  void prepare(const SourceReader& src) override { q_->ensure_scales(src); }
  void produce(const SourceReader& src, uint64_t begin, uint64_t n, uint8_t* out) const override {
    q_->quantize(src, begin, n, out);
  }
  ojson describe() const override { return describe_quantization(*q_, "fp8 e4m3fn codes"); }

 private:
  std::shared_ptr<Fp8Quantization> q_;
};

class Fp8ScalesProducer : public Producer {
 public:
  explicit Fp8ScalesProducer(std::shared_ptr<Fp8Quantization> q) : q_(std::move(q)) {}
  uint64_t nbytes() const override { return q_->grid().groups() * (dtype_bits(q_->scale_dtype()) / 8); }
  void prepare(const SourceReader& src) override { q_->ensure_scales(src); }
  void produce(const SourceReader&, uint64_t begin, uint64_t n, uint8_t* out) const override {
    const unsigned size = dtype_bits(q_->scale_dtype()) / 8;
    for (uint64_t g = begin / size; g < (begin + n) / size; ++g)
      ops::store_scale(q_->scales()[g], q_->scale_dtype(), out + (g * size - begin));
  }
  ojson describe() const override { return describe_quantization(*q_, "fp8 scales"); }

 private:
  std::shared_ptr<Fp8Quantization> q_;
};

}  // namespace

std::shared_ptr<const Fp8Engine> cpu_fp8_engine() {
  static const auto engine = std::make_shared<CpuFp8Engine>();
  return engine;
}

Fp8Quantization::Fp8Quantization(std::string tensor, SourceView view, ops::Fp8Grid grid, DType scale_dtype,
                                 std::shared_ptr<const Fp8Engine> engine)
    : tensor_(std::move(tensor)), view_(std::move(view)), grid_(grid), scale_dtype_(scale_dtype),
      engine_(engine ? std::move(engine) : cpu_fp8_engine()) {
  if (!ops::fp8_input_dtype_ok(view_.dtype) || !ops::fp8_scale_dtype_ok(scale_dtype_) ||
      grid_.numel() != view_.numel() || grid_.block_rows == 0 || grid_.block_cols == 0)
    throw std::logic_error("Fp8Quantization: bad dtype or grid for " + tensor_);
}

void Fp8Quantization::ensure_scales(const SourceReader& src) {
  std::call_once(once_, [&] {
    const uint64_t stripe = kStripeBytes / (dtype_bits(view_.dtype) / 8);
    std::vector<float> amax(grid_.groups(), 0.0f);
    engine_->amax_range(grid_, view_.dtype, SourceElements(src, view_), 0, grid_.numel(), stripe, amax.data());
    scales_.resize(amax.size());
    for (size_t g = 0; g < amax.size(); ++g) {
      if (!std::isfinite(amax[g])) {
        const std::string file = view_.file >= 0 ? src.file(view_.file).path() : "";
        fail(Errc::kCheckFailed, file, tensor_, "the weight holds NaN or Inf (the source is corrupt); refusing to quantize it");
      }
      scales_[g] = ops::fp8_scale_for_amax(amax[g], scale_dtype_);
    }
  });
}

void Fp8Quantization::quantize(const SourceReader& src, uint64_t first, uint64_t count, uint8_t* out) const {
  // One error slot per kStatsBlock elements of the weight: the same sums whatever the chunks.
  std::vector<ops::Fp8ErrorStats> s(piece_count(first, count, kStatsBlock));
  engine_->quantize_range(grid_, view_.dtype, SourceElements(src, view_), first, count, kStatsBlock, scales_.data(), out,
                          s.data());
  std::lock_guard<std::mutex> lock(stats_mutex_);
  for (size_t i = 0; i < s.size(); ++i) stats_[first / kStatsBlock + i].merge(s[i]);
}

ops::Fp8ErrorStats Fp8Quantization::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  ops::Fp8ErrorStats total;
  for (const auto& [slot, s] : stats_) total.merge(s);
  return total;
}

std::shared_ptr<Producer> fp8_codes_producer(std::shared_ptr<Fp8Quantization> q) {
  return std::make_shared<Fp8CodesProducer>(std::move(q));
}

std::shared_ptr<Producer> fp8_scales_producer(std::shared_ptr<Fp8Quantization> q) {
  return std::make_shared<Fp8ScalesProducer>(std::move(q));
}

}  // namespace ckpt
